"""User simulator on MovieLens-100K: calibration against a held-out fold."""

from __future__ import annotations

import numpy as np
import pytest

from adaptrec.data import kfold_split, load_dataset
from adaptrec.evaluation.simulator import UserSimulator, drop_held_out

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def movielens():
    return load_dataset("ml-100k")


def test_test_fold_likes_more_attractive(movielens):
    fold = kfold_split(movielens, n_folds=5, seed=0)[0]
    train_ratings = drop_held_out(movielens.ratings, fold.test)
    simulator = UserSimulator().fit(movielens, ratings=train_ratings, seed=0)
    test = fold.test.tocoo()
    rng = np.random.default_rng(0)
    random_items = rng.integers(0, movielens.n_items, size=test.nnz)

    p_liked = simulator.attractiveness(test.row, test.col[:, None])[:, 0]
    p_random = simulator.attractiveness(test.row, random_items[:, None])[:, 0]

    assert len(train_ratings) == len(movielens.ratings) - test.nnz
    assert simulator.link_a > 0
    assert p_liked.mean() > 1.5 * p_random.mean()
    assert np.median(p_liked) > np.median(p_random)


def test_describe_reports_fitted_link(movielens):
    simulator = UserSimulator().fit(movielens, seed=0)

    described = simulator.describe()

    assert described["n_ratings"] == len(movielens.ratings)
    assert 0.6 < described["train_rmse"] < 1.0
    assert described["link"]["a"] > 0
    assert 0.0 < described["link"]["base_rate"] < 0.1
