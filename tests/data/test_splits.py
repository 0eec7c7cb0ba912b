"""Per-user k-fold splits and validation splits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from adaptrec.data import kfold_split, load_dataset, validation_split

from .movielens_files import write_ml100k


def random_positives(n_users=60, n_items=40, seed=7) -> sp.csr_matrix:
    """Return positives where user u has u % 12 items, so some have fewer than 5."""
    rng = np.random.default_rng(seed)
    rows, columns = [], []
    for user in range(n_users):
        items = rng.choice(n_items, size=user % 12, replace=False)
        rows.extend([user] * len(items))
        columns.extend(items)
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, columns)), shape=(n_users, n_items))


def as_pairs(matrix: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def test_folds_partition_positives():
    positives = random_positives()
    folds = kfold_split(positives, n_folds=5, seed=0)

    assert [fold.index for fold in folds] == [0, 1, 2, 3, 4]
    all_pairs = as_pairs(positives)
    test_union = set()
    for fold in folds:
        train, test = as_pairs(fold.train), as_pairs(fold.test)
        assert not train & test
        assert train | test == all_pairs
        assert not test_union & test
        test_union |= test
        assert set(fold.train.data) == {1.0}
        assert set(fold.test.data) == {1.0}
        assert fold.train.shape == positives.shape
    # Every positive is a test item in exactly one fold.
    assert test_union == all_pairs


def test_folds_balanced_per_user():
    positives = random_positives()
    folds = kfold_split(positives, n_folds=5, seed=3)

    counts = np.diff(positives.indptr)
    per_fold = np.stack([np.diff(fold.test.indptr) for fold in folds], axis=1)
    for user, n_positive in enumerate(counts):
        row = per_fold[user]
        assert row.sum() == n_positive
        assert row.max() - row.min() <= 1
        if n_positive >= 5:
            assert (row >= 1).all(), f"user {user} lacks test items in a fold"
        else:
            # Users with fewer positives than folds get one test item in that many.
            assert (row == 1).sum() == n_positive


def test_small_users_spread_over_folds():
    # 500 users with one positive each: a fixed start would put all in fold 0.
    positives = sp.csr_matrix(np.eye(500, 500, dtype=np.float32))
    folds = kfold_split(positives, n_folds=5, seed=0)

    test_users = [np.count_nonzero(np.diff(fold.test.indptr)) for fold in folds]
    assert sum(test_users) == 500
    assert min(test_users) > 70


def test_folds_repeat_with_same_seed():
    positives = random_positives()
    first = kfold_split(positives, n_folds=5, seed=11)
    second = kfold_split(positives, n_folds=5, seed=11)
    other = kfold_split(positives, n_folds=5, seed=12)

    for a, b in zip(first, second, strict=True):
        assert (a.test != b.test).nnz == 0
        assert (a.train != b.train).nnz == 0
    assert any((a.test != c.test).nnz for a, c in zip(first, other, strict=True))


def test_folds_ignore_stored_values():
    weighted = random_positives() * 3.0

    folds = kfold_split(weighted, n_folds=3, seed=0)

    assert len(folds) == 3
    assert set(folds[0].test.data) == {1.0}
    assert set(folds[0].train.data) == {1.0}


def test_folds_of_dataset_split_positives(tmp_path):
    dataset = load_dataset(write_ml100k(tmp_path / "data"))

    folds = kfold_split(dataset, n_folds=2, seed=0)

    positives = as_pairs(dataset.positives())
    assert as_pairs(folds[0].test) | as_pairs(folds[1].test) == positives


@pytest.mark.parametrize("n_folds", [1, 0, 2.5])
def test_invalid_fold_count_rejected(n_folds):
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        kfold_split(random_positives(), n_folds=n_folds)


def test_dense_input_rejected():
    with pytest.raises(TypeError, match="scipy sparse matrix"):
        kfold_split(np.ones((3, 3)))


def test_validation_split_partitions_train():
    train = kfold_split(random_positives(), seed=0)[0].train

    fit, valid = validation_split(train, fraction=0.2, seed=0)

    assert not as_pairs(fit) & as_pairs(valid)
    assert as_pairs(fit) | as_pairs(valid) == as_pairs(train)


def test_validation_split_sizes_per_user():
    # Users with 1, 2, 3, 5 and 10 items.
    counts = [1, 2, 3, 5, 10]
    rows = np.repeat(np.arange(len(counts)), counts)
    columns = np.concatenate([np.arange(c) for c in counts])
    train = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(5, 10)
    )

    fit, valid = validation_split(train, fraction=0.2, seed=0)

    # round(0.2 * n) with half up: 0.2 -> 0, 0.4 -> 0, 0.6 -> 1, 1.0 -> 1, 2.0 -> 2.
    assert np.diff(valid.indptr).tolist() == [0, 0, 1, 1, 2]
    assert np.diff(fit.indptr).tolist() == [1, 2, 2, 4, 8]


def test_validation_split_keeps_one_item_to_fit():
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))

    fit, valid = validation_split(train, fraction=0.9, seed=0)

    # round(0.9 * 2) = 2 would empty user 0, so one item stays in fit.
    assert np.diff(valid.indptr).tolist() == [1, 0]
    assert np.diff(fit.indptr).tolist() == [1, 1]


def test_validation_split_repeats_with_same_seed():
    train = random_positives()

    fit_a, valid_a = validation_split(train, seed=5)
    fit_b, valid_b = validation_split(train, seed=5)
    _, valid_c = validation_split(train, seed=6)

    assert (valid_a != valid_b).nnz == 0
    assert (fit_a != fit_b).nnz == 0
    assert (valid_a != valid_c).nnz > 0


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_invalid_fraction_rejected(fraction):
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        validation_split(random_positives(), fraction=fraction)
