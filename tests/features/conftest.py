"""Fixtures for the feature repository tests: a small dataset, repo copies, stores.

Most tests run on a synthetic dataset of 30 users and 40 items over 60 days, so a
build takes seconds. One slow test builds the full MovieLens-100K.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from adaptrec.data.dataset import Dataset
from adaptrec.features import FeatureInputs, build_features, open_store
from tests.support.redis import redis_database, redis_server  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURE_REPO = REPO_ROOT / "feature_repo"
# 1998-01-01 00:00 UTC, the synthetic dataset's first day.
FIRST_DAY = 10227
N_USERS, N_ITEMS, N_TOPICS, N_DAYS = 30, 40, 5, 60
BACKENDS = ["sqlite", "redis"]


def make_dataset(seed: int = 7) -> Dataset:
    """Build a small dataset: each user rates a few items on a few random days."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(N_USERS):
        active_days = np.sort(
            rng.choice(N_DAYS, size=rng.integers(1, 6), replace=False)
        )
        items = rng.permutation(N_ITEMS)
        position = 0
        for day in active_days:
            for _ in range(rng.integers(1, 5)):
                second = int(rng.integers(0, 86_400))
                timestamp = (FIRST_DAY + int(day)) * 86_400 + second
                rating = float(rng.integers(1, 6))
                rows.append((user, int(items[position % N_ITEMS]), rating, timestamp))
                position += 1
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    items = pd.DataFrame(
        {
            "title": [f"Film {index}" for index in range(N_ITEMS)],
            "year": np.full(N_ITEMS, 1990.0),
            "genres": [["Drama"] for _ in range(N_ITEMS)],
        }
    )
    return Dataset(
        name="synthetic",
        user_ids=np.array([str(100 + user) for user in range(N_USERS)]),
        item_ids=np.array([str(500 + item) for item in range(N_ITEMS)]),
        ratings=ratings,
        items=items,
    )


def mean_topic_encoder(
    item_topics: np.ndarray,
) -> Callable[[sp.csr_matrix], tuple[np.ndarray, np.ndarray]]:
    """Return an encoder giving the mean and std of the history's item topics.

    It stands in for the NVDM encoder with the same contract, so the synthetic
    tests need no model training. The slow MovieLens test uses the real NVDM.
    """

    def encode(histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        counts = np.asarray(histories.sum(axis=1)).ravel()
        safe = np.maximum(counts, 1)[:, None]
        mean = (histories @ item_topics) / safe
        square = (histories @ item_topics**2) / safe
        std = np.sqrt(np.maximum(square - mean**2, 0.0)) + 0.01
        mean[counts == 0] = 1.0 / item_topics.shape[1]
        std[counts == 0] = 1.0
        return mean, std

    return encode


def make_inputs(seed: int = 7, offset: float = 0.0) -> FeatureInputs:
    """Random per-item model outputs; ``offset`` shifts the content embeddings."""
    rng = np.random.default_rng(seed)
    item_topics = rng.dirichlet(np.ones(N_TOPICS), size=N_ITEMS)
    return FeatureInputs(
        content=rng.normal(size=(N_ITEMS, 8)) + offset,
        kg=rng.normal(size=(N_ITEMS, 4)),
        kg_mask=rng.random(N_ITEMS) > 0.3,
        item_topics=item_topics,
        encode_user_topics=mean_topic_encoder(item_topics),
    )


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="session")
def inputs() -> FeatureInputs:
    return make_inputs()


def copy_repo(destination: Path) -> Path:
    """Copy the feature repository's definitions and configuration, without data."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("feature_store.yaml", "feature_store.redis.yaml", "definitions.py"):
        shutil.copy(FEATURE_REPO / name, destination / name)
    return destination


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh copy of feature_repo/ for one test."""
    return copy_repo(tmp_path / "feature_repo")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict:
    """Keyword arguments selecting the online store: SQLite, or a fresh Redis db."""
    if request.param == "sqlite":
        return {"online_store": "sqlite"}
    allocate = request.getfixturevalue("redis_database")
    return {"online_store": "redis", "redis_url": allocate()}


@pytest.fixture(scope="session")
def build_time() -> datetime:
    """The clock the builds run at: two days after the synthetic data ends."""
    return datetime.fromtimestamp((FIRST_DAY + N_DAYS + 2) * 86_400, UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def built(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dataset: Dataset,
    inputs: FeatureInputs,
    build_time: datetime,
):
    """A repository built from the synthetic dataset, shared by a module's tests."""
    kwargs: dict = {"online_store": request.param}
    if request.param == "redis":
        kwargs["redis_url"] = request.getfixturevalue("redis_database")()
    path = copy_repo(tmp_path_factory.mktemp("built") / "feature_repo")
    summary = build_features(path, dataset, inputs, now=build_time, **kwargs)
    return path, open_store(path, **kwargs), summary
