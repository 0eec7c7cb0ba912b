"""Shared fixtures for the tuning tests: a synthetic dataset, the stand-in
recommender trained on one fold, and a user simulator fitted on all ratings."""

from __future__ import annotations

import pytest
import torch

from adaptrec.data.splits import kfold_split
from adaptrec.evaluation.simulator import SimulatorConfig, UserSimulator
from adaptrec.hyperparams import HyperparamSpace
from tests.tuning.stand_in import (
    StandInRecommender,
    synthetic_content,
    synthetic_dataset,
)


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread():
    # The networks here are tiny; on a shared 2-core machine extra intra-op
    # threads only contend with each other and slow every step several-fold.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def dataset():
    return synthetic_dataset(n_users=80, n_items=120, density=0.3, seed=0)


@pytest.fixture(scope="session")
def fold(dataset):
    return kfold_split(dataset, n_folds=5, seed=0)[0]


@pytest.fixture(scope="session")
def content(dataset):
    return synthetic_content(dataset)


@pytest.fixture(scope="session")
def recommender(fold, content):
    return StandInRecommender(fold.train, content)


@pytest.fixture(scope="session")
def simulator(dataset):
    config = SimulatorConfig(factors=4, iterations=8)
    return UserSimulator(config).fit(dataset, seed=0, device="cpu")


@pytest.fixture(scope="session")
def space():
    return HyperparamSpace.from_yaml()
