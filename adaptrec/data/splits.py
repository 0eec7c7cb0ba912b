"""Per-user cross-validation folds and validation splits of a positives matrix.

Both splits work per user: each user's positives are shuffled with a seeded
generator, so every user with enough positives is represented in every test or
validation set, and the same seed always gives the same split.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from adaptrec.data.dataset import Dataset, Fold


def kfold_split(
    data: Dataset | sp.spmatrix | sp.sparray, n_folds: int = 5, seed: int = 0
) -> list[Fold]:
    """Split each user's positives into ``n_folds`` folds of test items.

    Each user's positives are shuffled and dealt round-robin to the folds, starting
    at a random fold per user. A user with at least ``n_folds`` positives therefore
    has test items in every fold, and the fold sizes of one user differ by at most
    one. A user with fewer positives has test items in that many folds and keeps all
    positives in train in the others. The random start spreads such users evenly
    over the folds instead of piling them into the first ones.

    Args:
        data: A dataset (its positives are split) or a user x item matrix whose
            nonzero entries are the positives.
        n_folds: Number of folds, at least 2.
        seed: Seed of the shuffle.

    Returns:
        ``n_folds`` folds whose binary ``train`` and ``test`` matrices are disjoint
        and add up to the positives.
    """
    if not isinstance(n_folds, numbers.Integral) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    positives = binary_csr(data.positives() if isinstance(data, Dataset) else data)
    rng = np.random.default_rng(seed)

    rows, columns, rank = _shuffled_ranks(positives, rng)
    start = rng.integers(0, n_folds, size=positives.shape[0])
    fold_of = (rank + start[rows]) % n_folds

    folds = []
    for index in range(n_folds):
        in_test = fold_of == index
        test = _csr_from(rows[in_test], columns[in_test], positives.shape)
        train = _csr_from(rows[~in_test], columns[~in_test], positives.shape)
        folds.append(Fold(index=index, train=train, test=test))
    return folds


def validation_split(
    train: sp.spmatrix | sp.sparray, fraction: float = 0.2, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Carve a per-user validation set out of a training matrix.

    Each user gives ``round(fraction * n)`` of their ``n`` training items (half
    rounds up) to the validation set, but always keeps at least one item to fit on,
    so a user with a single item gives none. Tuners fit on ``fit`` and score on
    ``valid``, and so never see a fold's test items.

    Returns:
        ``(fit, valid)``: disjoint binary CSR matrices that add up to ``train``.
    """
    if not isinstance(fraction, numbers.Real) or not 0.0 < float(fraction) < 1.0:
        raise ValueError(
            f"fraction must be between 0 and 1 (exclusive), got {fraction!r}"
        )
    matrix = binary_csr(train)
    rng = np.random.default_rng(seed)

    rows, columns, rank = _shuffled_ranks(matrix, rng)
    counts = np.diff(matrix.indptr)
    n_valid = np.floor(fraction * counts + 0.5).astype(np.int64)
    n_valid = np.minimum(n_valid, np.maximum(counts - 1, 0))
    in_valid = rank < n_valid[rows]

    valid = _csr_from(rows[in_valid], columns[in_valid], matrix.shape)
    fit = _csr_from(rows[~in_valid], columns[~in_valid], matrix.shape)
    return fit, valid


def binary_csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Return a canonical float32 CSR copy whose stored entries are all 1.

    Raises:
        TypeError: ``matrix`` is not a 2-D scipy sparse matrix.
    """
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise TypeError(
            f"expected a Dataset or a 2-D scipy sparse matrix, got {type(matrix)}"
        )
    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.eliminate_zeros()
    binary.sort_indices()
    binary.data[:] = 1.0
    return binary


def _shuffled_ranks(
    matrix: sp.csr_matrix, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give each stored entry a random rank ``0..n_u-1`` within its row.

    Returns the row, column and rank of every stored entry, in CSR order.
    """
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    keys = rng.random(matrix.nnz)
    # Sorting by (row, random key) shuffles within each row, and since CSR order is
    # already sorted by row, position minus the row's start is the rank.
    order = np.lexsort((keys, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - matrix.indptr[rows]
    return rows, matrix.indices.astype(np.int64), rank


def _csr_from(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]):
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, columns)), shape=shape)
    matrix.sort_indices()
    return matrix
