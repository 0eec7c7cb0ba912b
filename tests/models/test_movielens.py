"""The hybrid recommender on MovieLens-100K fold 0 with the full model budgets.

Measured on a shared 2-core CPU (``python -m adaptrec.models.benchmark``):
NDCG@10 popularity 0.152, EASE 0.320, content alone 0.199, KG alone 0.189,
topic alone 0.229, the packaged initial set 0.317. The bounds below are loose
around these, so a broken component or metric fails without flaking.
"""

from __future__ import annotations

import logging

import pytest
import torch

from adaptrec.data import kfold_split, load_dataset
from adaptrec.evaluation.baselines import ease_score_fn, popularity_score_fn
from adaptrec.evaluation.metrics import evaluate_scores
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig
from adaptrec.models.benchmark import component_ndcg

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fold_0():
    dataset = load_dataset("ml-100k")
    return dataset, kfold_split(dataset, n_folds=5, seed=0)[0]


@pytest.fixture(scope="module")
def model(fold_0):
    dataset, fold = fold_0
    config = ModelConfig()
    embeddings = ItemEmbeddings.compute(dataset, config)
    return HybridRecommender.fit(
        dataset, fold.train, HyperparamSpace.from_yaml(), config, embeddings
    )


def baseline_ndcg(score_fn, fold) -> float:
    return evaluate_scores(score_fn, fold.train, fold.test, k=10, device="cpu")["ndcg"]


def test_components_beat_popularity_and_match_ease(model, fold_0):
    _, fold = fold_0
    popularity = baseline_ndcg(popularity_score_fn(fold.train, device="cpu"), fold)
    ease = baseline_ndcg(ease_score_fn(fold.train, l2=200.0, device="cpu"), fold)

    ndcg = component_ndcg(model, fold, model.space.initial())
    logger.info("NDCG@10 popularity %.4f, EASE %.4f, hybrid %s", popularity, ease, ndcg)

    assert 0.28 < ease < 0.36
    assert ndcg["cf"] == pytest.approx(ease, abs=1e-4)
    assert ndcg["hybrid"] > 0.95 * ease, ndcg
    for component in ("content", "kg", "topic"):
        assert ndcg[component] > 1.1 * popularity, (component, ndcg, popularity)


def test_recommend_on_movielens_skips_training_items(model, fold_0):
    _, fold = fold_0
    users = list(range(0, model.n_users, 50))
    items, _ = model.recommend(torch.tensor(users), model.space.initial(), k=20)
    for row, user in enumerate(users):
        assert not set(items[row].tolist()) & set(fold.train[user].indices.tolist())
