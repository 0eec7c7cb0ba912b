"""Fixtures for the recommender tests: a tiny synthetic dataset with a knowledge
graph, random item embeddings and a small hyperparameter space."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from adaptrec.data.dataset import Dataset
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread():
    # The models here are tiny; on a shared 2-core machine extra intra-op threads
    # only contend with each other.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_dataset(n_users: int = 30, n_items: int = 40, seed: int = 0) -> Dataset:
    """Build ratings with two taste groups, item text and a KG linking most items.

    Users in group g rate items of group g (even or odd index) 5 more often than
    others, so the components have structure to find. Items 0 and 1 have no KG
    link.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        group = user % 2
        for item in range(n_items):
            liked = item % 2 == group
            if rng.random() < (0.45 if liked else 0.12):
                rating = 5.0 if liked or rng.random() < 0.5 else 2.0
                rows.append((user, item, rating, 880000000 + len(rows)))
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    items = pd.DataFrame(
        {
            "title": [f"Movie {item}" for item in range(n_items)],
            "year": [
                np.nan if item == 3 else 1990.0 + item % 7 for item in range(n_items)
            ],
            "genres": [
                [GENRES[item % 2], GENRES[2 + item % 3]] for item in range(n_items)
            ],
        }
    )
    triples = []
    for item in range(2, n_items):
        triples.append((f"m.{item}", "film.genre", f"g.{item % 2}"))
        triples.append((f"m.{item}", "film.director", f"d.{item % 5}"))
    kg = pd.DataFrame(triples, columns=["head", "relation", "tail"])
    return Dataset(
        name="tiny",
        user_ids=np.array([str(user + 1) for user in range(n_users)]),
        item_ids=np.array([str(item + 1) for item in range(n_items)]),
        ratings=ratings,
        items=items,
        kg=kg,
        item_entities={item: f"m.{item}" for item in range(2, n_items)},
    )


def random_embeddings(n_items: int, seed: int = 0) -> ItemEmbeddings:
    """Return unit content vectors and KG vectors with the first two items unlinked."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n_items, 384)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    kg = rng.normal(size=(n_items, 8)).astype(np.float32)
    mask = np.ones(n_items, dtype=bool)
    mask[:2] = False
    kg[~mask] = 0.0
    return ItemEmbeddings(content=content, kg=kg, kg_mask=mask)


def small_space() -> HyperparamSpace:
    """Return the default names with two beta and two gamma grid values."""
    return HyperparamSpace.from_dicts(
        [
            {"name": "alpha", "min": 0.0, "max": 1.0, "step": 0.1, "initial": 0.5},
            {"name": "w_content", "min": 0.0, "max": 1.0, "step": 0.1, "initial": 0.2},
            {"name": "w_kg", "min": 0.0, "max": 1.0, "step": 0.1, "initial": 0.2},
            {"name": "w_topic", "min": 0.0, "max": 1.0, "step": 0.1, "initial": 0.2},
            {
                "name": "beta",
                "min": 0.002,
                "max": 0.004,
                "step": 0.002,
                "initial": 0.004,
            },
            {"name": "gamma", "min": 1.0, "max": 11.0, "step": 10.0, "initial": 1.0},
        ]
    )


def hyperparams(**values: float) -> dict[str, float]:
    """Return the small space's initial values with ``values`` replaced."""
    result = dict(small_space().initial())
    result.update(values)
    return result


def train_matrix(dataset: Dataset, seed: int = 0) -> sp.csr_matrix:
    """Return about 80% of each user's positives as training interactions."""
    positives = dataset.positives().tocoo()
    keep = np.random.default_rng(seed).random(positives.nnz) < 0.8
    return sp.csr_matrix(
        (positives.data[keep], (positives.row[keep], positives.col[keep])),
        shape=positives.shape,
    )


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return tiny_dataset()


@pytest.fixture(scope="session")
def train(dataset) -> sp.csr_matrix:
    return train_matrix(dataset)


@pytest.fixture(scope="session")
def embeddings(dataset) -> ItemEmbeddings:
    return random_embeddings(dataset.n_items)


@pytest.fixture(scope="session")
def config() -> ModelConfig:
    return ModelConfig.quick(nvdm_epochs=5, nvdm_hidden=16, n_topics=4)


@pytest.fixture()
def recommender(dataset, train, embeddings, config) -> HybridRecommender:
    return HybridRecommender.fit(
        dataset, train, small_space(), config, embeddings=embeddings, device="cpu"
    )
