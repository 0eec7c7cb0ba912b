"""Top-K ranking metrics over the full catalogue: Precision@K, Recall@K and NDCG@K.

Protocol: every item the user has not interacted with in training is a candidate,
so a user's training items are masked to -inf before taking the top K. Relevance
is binary (an item is relevant when it is in the user's test set). The reported
means are over users with at least one test item.

- Precision@K = hits / K.
- Recall@K = hits / |test|.
- NDCG@K = DCG / IDCG with DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1),
  and IDCG the DCG of min(K, |test|) hits at the top ranks.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps a LongTensor of user indices ``[B]`` to a FloatTensor of scores
``[B, n_items]``."""


def default_device() -> torch.device:
    """Return CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dense_rows(
    matrix: sp.csr_matrix,
    users: np.ndarray,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Return rows ``users`` of a CSR matrix as a dense ``[len(users), n_items]``
    tensor on ``device``, with 1 wherever an entry is stored."""
    block = matrix[users]
    counts = np.diff(block.indptr)
    rows = np.repeat(np.arange(len(users)), counts)
    dense = torch.zeros((len(users), matrix.shape[1]), dtype=dtype, device=device)
    row_index = torch.from_numpy(rows).to(device)
    column_index = torch.from_numpy(block.indices.astype(np.int64)).to(device)
    dense[row_index, column_index] = 1
    return dense


def ranking_metrics(
    top_items: torch.Tensor, relevant: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Compute per-user Precision@K, Recall@K and NDCG@K from top-K lists.

    Args:
        top_items: ``[B, K]`` item indices, best first.
        relevant: ``[B, n_items]`` boolean (or 0/1) test items of the same users.

    Returns:
        ``precision``, ``recall``, ``ndcg`` and ``n_relevant`` as ``[B]`` float
        tensors. Recall and NDCG are 0 for a user without relevant items.
    """
    if top_items.ndim != 2 or relevant.ndim != 2:
        raise ValueError(
            f"top_items and relevant must be 2-D, got shapes {tuple(top_items.shape)} "
            f"and {tuple(relevant.shape)}"
        )
    if top_items.shape[0] != relevant.shape[0]:
        raise ValueError(
            f"top_items has {top_items.shape[0]} users but relevant has "
            f"{relevant.shape[0]}"
        )
    k = top_items.shape[1]
    relevant = relevant.to(torch.float32)
    hits = relevant.gather(1, top_items.long())
    n_relevant = relevant.sum(dim=1)
    n_hits = hits.sum(dim=1)

    # Rank r (1-based) is discounted by 1 / log2(r + 1).
    ranks = torch.arange(2, k + 2, device=hits.device, dtype=torch.float32)
    discounts = 1.0 / torch.log2(ranks)
    dcg = (hits * discounts).sum(dim=1)
    ideal_hits = torch.clamp(n_relevant, max=k).long()
    ideal_dcg = torch.cat([discounts.new_zeros(1), discounts.cumsum(0)])[ideal_hits]

    has_relevant = n_relevant > 0
    safe_relevant = torch.where(has_relevant, n_relevant, torch.ones_like(n_relevant))
    safe_ideal = torch.where(has_relevant, ideal_dcg, torch.ones_like(ideal_dcg))
    return {
        "precision": n_hits / k,
        "recall": torch.where(has_relevant, n_hits / safe_relevant, 0.0),
        "ndcg": torch.where(has_relevant, dcg / safe_ideal, 0.0),
        "n_relevant": n_relevant,
    }


def evaluate_scores(
    score_fn: ScoreFn,
    train: sp.spmatrix | sp.sparray,
    test: sp.spmatrix | sp.sparray,
    k: int = 10,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Rank the full catalogue for every user with test items and score the top K.

    ``score_fn`` receives a LongTensor of user indices on ``device`` and returns
    ``[B, n_items]`` scores. Training items are masked to -inf here, without
    changing the returned tensor, so ``score_fn`` may return cached scores.

    Args:
        score_fn: Scores for a batch of users.
        train: Binary ``n_users x n_items`` training interactions, which are never
            recommended.
        test: Binary test interactions of the same shape, disjoint from ``train``.
        k: Length of the ranked list.
        batch_size: Users scored at once. Peak memory on ``device`` is an estimated
            ``4 * batch_size * n_items * 4`` bytes plus what ``score_fn`` allocates.
        device: Where to score; CUDA when available, else the CPU.

    Returns:
        A dict with ``k``, ``n_users`` (users with at least one test item) and the
        mean ``precision``, ``recall`` and ``ndcg`` over those users. Its
        ``per_user`` entry is a dict of NumPy arrays ``users``, ``precision``,
        ``recall`` and ``ndcg``, for confidence intervals.

    Raises:
        ValueError: Shapes differ, ``k`` is out of range, ``train`` and ``test``
            overlap, no user has test items, or ``score_fn`` returns the wrong shape
            or NaN.
    """
    train_csr, test_csr = _check_inputs(train, test, k, batch_size)
    device = torch.device(device) if device is not None else default_device()
    n_items = train_csr.shape[1]
    users = np.flatnonzero(np.diff(test_csr.indptr) > 0)
    if len(users) == 0:
        raise ValueError("test has no user with a test item; nothing to evaluate")

    per_user: dict[str, list[np.ndarray]] = {"precision": [], "recall": [], "ndcg": []}
    batches = range(0, len(users), batch_size)
    progress = tqdm(
        batches, desc=f"evaluate@{k}", unit="batch", leave=False, disable=None
    )
    with torch.no_grad():
        for start in progress:
            batch = users[start : start + batch_size]
            user_tensor = torch.from_numpy(batch.astype(np.int64)).to(device)
            scores = score_fn(user_tensor)
            _check_scores(scores, len(batch), n_items)

            seen = dense_rows(train_csr, batch, device, torch.bool)
            masked = scores.to(device, torch.float32).masked_fill(seen, float("-inf"))
            top_items = torch.topk(masked, k, dim=1).indices
            relevant = dense_rows(test_csr, batch, device, torch.bool)
            metrics = ranking_metrics(top_items, relevant)
            for name in per_user:
                per_user[name].append(metrics[name].cpu().numpy())

    arrays = {name: np.concatenate(parts) for name, parts in per_user.items()}
    result: dict[str, Any] = {"k": k, "n_users": len(users)}
    for name, values in arrays.items():
        result[name] = float(values.mean())
    result["per_user"] = {"users": users, **arrays}
    logger.debug(
        "Evaluated %d users at K=%d: precision %.4f, recall %.4f, NDCG %.4f",
        len(users),
        k,
        result["precision"],
        result["recall"],
        result["ndcg"],
    )
    return result


def _check_inputs(
    train: sp.spmatrix | sp.sparray,
    test: sp.spmatrix | sp.sparray,
    k: int,
    batch_size: int,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    for name, matrix in (("train", train), ("test", test)):
        if not sp.issparse(matrix) or matrix.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D scipy sparse matrix, got {type(matrix).__name__}"
            )
    if train.shape != test.shape:
        raise ValueError(f"train has shape {train.shape} but test has {test.shape}")
    n_items = train.shape[1]
    if not isinstance(k, numbers.Integral) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an integer from 1 to n_items={n_items}, got {k!r}")
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    train_csr = sp.csr_matrix(train)
    test_csr = sp.csr_matrix(test)
    train_csr.eliminate_zeros()
    test_csr.eliminate_zeros()
    overlap = train_csr.multiply(test_csr).nnz
    if overlap:
        raise ValueError(
            f"train and test share {overlap} user-item pair(s); a test item that is "
            "also a training item would be masked and never count as a hit"
        )
    return train_csr, test_csr


def _check_scores(scores: torch.Tensor, n_users: int, n_items: int) -> None:
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"score_fn must return a torch.Tensor, got {type(scores)}")
    if tuple(scores.shape) != (n_users, n_items):
        raise ValueError(
            f"score_fn returned shape {tuple(scores.shape)}, expected "
            f"({n_users}, {n_items}) for a batch of {n_users} users"
        )
    if torch.isnan(scores).any():
        raise ValueError("score_fn returned NaN scores; ranking them is undefined")
