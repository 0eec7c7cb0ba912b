"""Popularity, cosine ItemKNN and EASE score functions, and their NDCG@10 on
MovieLens-100K under the project's protocol."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from adaptrec.data import kfold_split, load_dataset
from adaptrec.evaluation.baselines import (
    ease_score_fn,
    item_knn_score_fn,
    popularity_score_fn,
)
from adaptrec.evaluation.metrics import evaluate_scores

logger = logging.getLogger(__name__)

# Users x items: item 0 is liked by users 0, 1, 2; item 1 by 0, 1; item 2 by 2;
# item 3 by no user.
TRAIN = sp.csr_matrix(
    np.array(
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0]],
        dtype=np.float32,
    )
)


def all_scores(score_fn, n_users=3) -> np.ndarray:
    return score_fn(torch.arange(n_users)).cpu().numpy()


def test_popularity_counts_training_users():
    scores = all_scores(popularity_score_fn(TRAIN, device="cpu"))

    assert scores.tolist() == [[3, 2, 1, 0]] * 3


def test_item_knn_cosine_by_hand():
    scores = all_scores(item_knn_score_fn(TRAIN, device="cpu"))

    # cos(0, 1) = 2 / sqrt(3 * 2), cos(0, 2) = 1 / sqrt(3 * 1), cos(1, 2) = 0.
    cos01 = 2 / math.sqrt(6)
    cos02 = 1 / math.sqrt(3)
    # User 0 has items {0, 1}: item 0 scores cos(1, 0), item 1 cos(0, 1), item 2
    # cos(0, 2) + cos(1, 2).
    np.testing.assert_allclose(scores[0], [cos01, cos01, cos02, 0], rtol=1e-6)
    # User 2 has items {0, 2}: item 0 scores cos(2, 0), item 1 cos(0, 1), item 2
    # cos(0, 2).
    np.testing.assert_allclose(scores[2], [cos02, cos01, cos02, 0], rtol=1e-6)


def test_item_knn_keeps_top_neighbours():
    scores = all_scores(item_knn_score_fn(TRAIN, neighbors=1, device="cpu"))

    # Item 2's single neighbour is item 0, and item 0's is item 1 (2/sqrt(6) beats
    # 1/sqrt(3)). So for user 2 (items 0, 2) item 0 scores 0, because cos(2, 0) was
    # pruned from item 0's column.
    np.testing.assert_allclose(
        scores[2], [0, 2 / math.sqrt(6), 1 / math.sqrt(3), 0], rtol=1e-6
    )


def test_ease_matches_closed_form():
    l2 = 0.5
    scores = all_scores(ease_score_fn(TRAIN, l2=l2, device="cpu"))

    x = TRAIN.toarray().astype(np.float64)
    inverse = np.linalg.inv(x.T @ x + l2 * np.eye(4))
    weights = np.eye(4) - inverse / np.diag(inverse)[None, :]
    assert np.allclose(np.diag(weights), 0)
    np.testing.assert_allclose(scores, x @ weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("factory", "argument", "message"),
    [
        (item_knn_score_fn, {"neighbors": 0}, "neighbors must be a positive integer"),
        (ease_score_fn, {"l2": 0.0}, "l2 must be a positive number"),
    ],
)
def test_invalid_baseline_arguments_rejected(factory, argument, message):
    with pytest.raises(ValueError, match=message):
        factory(TRAIN, **argument)


@pytest.mark.slow
def test_ml100k_ndcg_of_baselines():
    # Protocol: ratings >= 4 are positives, per-user 5 folds with seed 0, fold 0,
    # full ranking minus training items, K = 10. This test measured 0.152 for
    # popularity, 0.264 for cosine ItemKNN and 0.320 for EASE (lambda 200) on a
    # 2-core CPU; the bounds leave room for float differences on CUDA.
    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[0]
    expected = {
        "popularity": (popularity_score_fn(fold.train), 0.13, 0.17),
        "item_knn": (item_knn_score_fn(fold.train), 0.24, 0.29),
        "ease": (ease_score_fn(fold.train, l2=200.0), 0.30, 0.34),
    }

    ndcg = {}
    for name, (score_fn, low, high) in expected.items():
        started = time.perf_counter()
        result = evaluate_scores(score_fn, fold.train, fold.test, k=10)
        logger.info(
            "%s: NDCG@10 %.4f, Recall@10 %.4f, Precision@10 %.4f (%.2f s)",
            name,
            result["ndcg"],
            result["recall"],
            result["precision"],
            time.perf_counter() - started,
        )
        assert result["n_users"] > 900
        assert low < result["ndcg"] < high, f"{name} NDCG@10 {result['ndcg']:.4f}"
        ndcg[name] = result["ndcg"]

    assert ndcg["popularity"] < ndcg["item_knn"] < ndcg["ease"]
