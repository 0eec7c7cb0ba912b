"""Fixtures for the model server tests: one real saved hybrid recommender.

The recommender is fitted once per test session on MovieLens-100K fold 0 with
``ModelConfig.quick()`` and saved to a temporary directory. Every test and every
server subprocess loads that directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import scipy.sparse as sp
from starlette.testclient import TestClient

from adaptrec.data import kfold_split, load_dataset
from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.model_server.app import create_app
from adaptrec.model_server.model import RecommenderModel
from adaptrec.rollout import Rollout
from tests.support.model_server import model_server_factory  # noqa: F401
from tests.support.prometheus import prometheus_factory  # noqa: F401

SPACE = HyperparamSpace.from_yaml()


@dataclass(frozen=True)
class SavedModel:
    """A saved recommender and the fold it was trained on, by raw id."""

    directory: Path
    user_ids: list[str]
    item_ids: list[str]
    train: sp.csr_matrix

    def train_items(self, user_id: str) -> set[str]:
        """Raw ids of the items ``user_id`` has in the training fold."""
        row = self.train[self.user_ids.index(user_id)]
        return {self.item_ids[index] for index in row.indices}


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    from adaptrec.models.hybrid import HybridRecommender, ModelConfig

    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[0]
    recommender = HybridRecommender.fit(dataset, fold.train, SPACE, ModelConfig.quick())
    # Every set the tests serve keeps the initial beta and gamma, so training
    # those components once here saves each server load from training them.
    recommender.prepare([SPACE.initial()])
    directory = tmp_path_factory.mktemp("hybrid-ml100k")
    recommender.save(directory)
    return SavedModel(
        directory=directory,
        user_ids=[str(user) for user in dataset.user_ids],
        item_ids=[str(item) for item in dataset.item_ids],
        train=fold.train,
    )


def hyperparams(**overrides: float) -> HyperparamSet:
    """Return the space's initial set with some values replaced."""
    values = SPACE.initial().values_dict
    values.update(overrides)
    return HyperparamSet(values)


def user_id_tensor(
    data: list[object], datatype: str = "BYTES", shape: list[int] | None = None
) -> dict[str, object]:
    """Return a v2 ``user_id`` input tensor; the shape defaults to ``[len(data)]``."""
    return {
        "name": "user_id",
        "datatype": datatype,
        "shape": [len(data)] if shape is None else shape,
        "data": data,
    }


def write_rollout(path: Path, rollout: Rollout) -> Path:
    path.write_text(json.dumps(rollout.to_json_dict()))
    return path


@dataclass
class ServedModel:
    """A loaded model behind an in-process HTTP client."""

    model: RecommenderModel
    client: TestClient

    @property
    def name(self) -> str:
        return self.model.name


def serve_in_process(
    name: str, saved: SavedModel, rollout_file: Path | None = None, **options: object
) -> Iterator[ServedModel]:
    """Load ``saved`` as model ``name`` and yield it behind a TestClient."""
    model = RecommenderModel(name, saved.directory, rollout_file, **options)  # type: ignore[arg-type]
    model.load()
    app = create_app(model, rollout_poll_s=None)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield ServedModel(model, client)


@pytest.fixture(scope="module")
def served(saved_model: SavedModel) -> Iterator[ServedModel]:
    """The saved model as ``hybrid``, serving the space's initial set to everyone."""
    yield from serve_in_process("hybrid", saved_model, max_users=5)
