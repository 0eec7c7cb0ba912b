"""Precision@K, Recall@K and NDCG@K against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from adaptrec.evaluation.metrics import evaluate_scores, ranking_metrics


def log2(x: float) -> float:
    return math.log2(x)


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for user, items in enumerate(rows):
        dense[user, items] = 1.0
    return sp.csr_matrix(dense)


def fixed_scores(table: np.ndarray):
    scores = torch.tensor(table, dtype=torch.float32)

    def score(users: torch.Tensor) -> torch.Tensor:
        return scores[users.cpu()]

    return score


def test_ranking_metrics_single_user():
    # K = 5, hits at ranks 2 and 5, four relevant items in all.
    top_items = torch.tensor([[9, 1, 8, 7, 3]])
    relevant = torch.zeros((1, 10), dtype=torch.bool)
    relevant[0, [1, 3, 4, 5]] = True

    metrics = ranking_metrics(top_items, relevant)

    dcg = 1 / log2(3) + 1 / log2(6)
    ideal_dcg = 1 / log2(2) + 1 / log2(3) + 1 / log2(4) + 1 / log2(5)
    assert metrics["precision"].item() == pytest.approx(2 / 5)
    assert metrics["recall"].item() == pytest.approx(2 / 4)
    assert metrics["ndcg"].item() == pytest.approx(dcg / ideal_dcg, rel=1e-6)
    assert metrics["n_relevant"].item() == 4


def test_ranking_metrics_ideal_dcg_capped_at_k():
    # Three relevant items but K = 2: both slots hit, so NDCG is 1 and recall 2/3.
    top_items = torch.tensor([[0, 1]])
    relevant = torch.tensor([[True, True, True, False]])

    metrics = ranking_metrics(top_items, relevant)

    assert metrics["precision"].item() == pytest.approx(1.0)
    assert metrics["recall"].item() == pytest.approx(2 / 3)
    assert metrics["ndcg"].item() == pytest.approx(1.0)


def test_ranking_metrics_without_relevant_items():
    metrics = ranking_metrics(torch.tensor([[0, 1]]), torch.zeros((1, 3)))

    assert metrics["precision"].item() == 0.0
    assert metrics["recall"].item() == 0.0
    assert metrics["ndcg"].item() == 0.0


def test_ranking_metrics_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="top_items has 2 users"):
        ranking_metrics(torch.zeros((2, 3), dtype=torch.long), torch.zeros((1, 5)))


def hand_case():
    """Four users, six items, K = 3; scores rank items from high to low."""
    train = csr([[0], [], [2], [5]], n_items=6)
    test = csr([[1, 3], [5], [], [0, 1, 2, 3, 4]], n_items=6)
    scores = np.array(
        [
            # User 0: train item 0 scores highest but is masked, so the top 3 are
            # 1, 2, 3 and hits sit at ranks 1 and 3.
            [9, 8, 7, 6, 5, 4],
            # User 1: the test item 5 ranks 4th, outside the top 3.
            [6, 5, 4, 3, 2, 1],
            # User 2 has no test items and is not evaluated.
            [1, 2, 3, 4, 5, 6],
            # User 3: top 3 are 4, 0, then 5 (masked, -inf) loses to 1.
            [8, 1, 0, 0, 9, 10],
        ],
        dtype=np.float32,
    )
    return train, test, scores


def test_evaluate_scores_hand_case():
    train, test, scores = hand_case()

    result = evaluate_scores(fixed_scores(scores), train, test, k=3, device="cpu")

    # User 0: hits at ranks 1 and 3 of |test| = 2.
    ndcg_0 = (1 + 1 / log2(4)) / (1 + 1 / log2(3))
    # User 3: top 3 = [4, 0, 1], all hits, |test| = 5 so IDCG covers 3 ranks.
    ndcg_3 = 1.0
    assert result["k"] == 3
    assert result["n_users"] == 3
    assert result["per_user"]["users"].tolist() == [0, 1, 3]
    np.testing.assert_allclose(result["per_user"]["precision"], [2 / 3, 0, 3 / 3])
    np.testing.assert_allclose(result["per_user"]["recall"], [2 / 2, 0, 3 / 5])
    np.testing.assert_allclose(
        result["per_user"]["ndcg"], [ndcg_0, 0, ndcg_3], rtol=1e-6
    )
    assert result["precision"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert result["recall"] == pytest.approx((1 + 0 + 3 / 5) / 3)
    assert result["ndcg"] == pytest.approx((ndcg_0 + 0 + ndcg_3) / 3, rel=1e-6)


def test_evaluate_scores_partial_hits():
    # One user, K = 4, train {2}, test {0, 5, 6}; order by score: 2 (masked), 1, 0,
    # 3, 5, 4, 6, so the top 4 is [1, 0, 3, 5] with hits at ranks 2 and 4.
    train = csr([[2]], n_items=7)
    test = csr([[0, 5, 6]], n_items=7)
    scores = np.array([[6, 7, 9, 5, 3, 4, 1]], dtype=np.float32)

    result = evaluate_scores(fixed_scores(scores), train, test, k=4, device="cpu")

    dcg = 1 / log2(3) + 1 / log2(5)
    ideal_dcg = 1 / log2(2) + 1 / log2(3) + 1 / log2(4)
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["ndcg"] == pytest.approx(dcg / ideal_dcg, rel=1e-6)


def naive_metrics(scores, train, test, k):
    """Score users one by one with Python sets, as a reference."""
    precision, recall, ndcg = [], [], []
    for user in range(train.shape[0]):
        relevant = set(test[user].indices.tolist())
        if not relevant:
            continue
        seen = set(train[user].indices.tolist())
        candidates = [
            i for i in np.argsort(-scores[user], kind="stable") if i not in seen
        ]
        top = candidates[:k]
        gains = [1.0 if item in relevant else 0.0 for item in top]
        dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
        precision.append(sum(gains) / k)
        recall.append(sum(gains) / len(relevant))
        ndcg.append(dcg / ideal)
    return np.mean(precision), np.mean(recall), np.mean(ndcg)


@pytest.mark.parametrize("batch_size", [1, 7, 1024])
def test_evaluate_scores_matches_naive_loop(batch_size):
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 30
    interactions = rng.random((n_users, n_items)) < 0.3
    in_test = interactions & (rng.random((n_users, n_items)) < 0.3)
    train = sp.csr_matrix((interactions & ~in_test).astype(np.float32))
    test = sp.csr_matrix(in_test.astype(np.float32))
    # Distinct scores, so the ranking has no ties.
    scores = rng.permutation(n_users * n_items).reshape(n_users, n_items)
    scores = scores.astype(np.float32)

    result = evaluate_scores(
        fixed_scores(scores), train, test, k=5, batch_size=batch_size, device="cpu"
    )

    precision, recall, ndcg = naive_metrics(scores, train, test, k=5)
    assert result["n_users"] == int((np.diff(test.indptr) > 0).sum())
    assert result["precision"] == pytest.approx(precision, rel=1e-6)
    assert result["recall"] == pytest.approx(recall, rel=1e-6)
    assert result["ndcg"] == pytest.approx(ndcg, rel=1e-5)


def test_evaluate_scores_leaves_scores_unchanged():
    train, test, scores = hand_case()
    cached = torch.tensor(scores)
    before = cached.clone()

    # The score function returns a view of the cached tensor, not a copy.
    evaluate_scores(lambda users: cached[:3], train[[0, 1, 3]], test[[0, 1, 3]], k=3)

    assert torch.equal(cached, before)


def test_overlapping_train_and_test_rejected():
    train = csr([[0, 1]], n_items=4)
    test = csr([[1, 2]], n_items=4)

    with pytest.raises(ValueError, match="share 1 user-item pair"):
        evaluate_scores(fixed_scores(np.zeros((1, 4))), train, test, k=2)


@pytest.mark.parametrize("k", [0, 7, 2.5])
def test_invalid_k_rejected(k):
    train, test, scores = hand_case()

    with pytest.raises(ValueError, match="k must be an integer from 1 to n_items=6"):
        evaluate_scores(fixed_scores(scores), train, test, k=k)


def test_wrong_score_shape_rejected():
    train, test, _ = hand_case()

    with pytest.raises(ValueError, match=r"score_fn returned shape \(3, 5\)"):
        evaluate_scores(lambda users: torch.zeros((len(users), 5)), train, test, k=2)


def test_nan_scores_rejected():
    train, test, _ = hand_case()

    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(
            lambda users: torch.full((len(users), 6), float("nan")), train, test, k=2
        )


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="train has shape"):
        evaluate_scores(
            fixed_scores(np.zeros((1, 4))), csr([[0]], 4), csr([[1]], 5), k=2
        )


def test_empty_test_rejected():
    with pytest.raises(ValueError, match="no user with a test item"):
        evaluate_scores(
            fixed_scores(np.zeros((1, 4))), csr([[0]], 4), csr([[]], 4), k=2
        )
