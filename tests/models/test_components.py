"""EASE, z-scoring, NVDM and the KG projection on tiny synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from adaptrec.models import ModelError
from adaptrec.models.cf import ease_scores, fit_ease
from adaptrec.models.common import standardize_rows
from adaptrec.models.kg import fit_kg_projection, kg_scores
from adaptrec.models.nvdm import NVDM, NVDMTraining, fit_nvdm


def random_interactions(n_users=25, n_items=12, density=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    return sp.csr_matrix(dense)


# EASE


def test_ease_matches_numpy_solve():
    train = random_interactions()
    x = train.toarray().astype(np.float64)
    l2 = 3.0
    precision = np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), np.eye(x.shape[1]))
    expected = np.eye(x.shape[1]) - precision / np.diag(precision)[None, :]
    np.fill_diagonal(expected, 0.0)

    weights = fit_ease(train, l2).numpy()

    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.diag(weights) == 0.0)
    scores = ease_scores(torch.from_numpy(x).float(), torch.from_numpy(weights))
    np.testing.assert_allclose(scores.numpy(), x @ expected, rtol=1e-4, atol=1e-5)


def test_ease_rejects_nonpositive_lambda():
    with pytest.raises(ModelError, match="lambda must be positive, got 0"):
        fit_ease(random_interactions(), 0.0)


def test_ease_rejects_wrong_item_count():
    weights = fit_ease(random_interactions(), 1.0)
    with pytest.raises(ModelError, match="user rows have 5 items"):
        ease_scores(torch.zeros(2, 5), weights)


# z-scores


def test_standardize_uses_unseen_items():
    scores = torch.tensor([[10.0, 1.0, 2.0, 3.0], [4.0, 4.0, 4.0, 9.0]])
    seen = torch.tensor([[True, False, False, False], [False, False, False, False]])

    z = standardize_rows(scores, seen)

    candidates = torch.tensor([1.0, 2.0, 3.0])
    expected = (candidates - 2.0) / candidates.std(unbiased=False)
    torch.testing.assert_close(z[0, 1:], expected)
    assert z[0, 0] == pytest.approx((10.0 - 2.0) / expected.new_tensor(2 / 3).sqrt())
    assert z[1].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert z[1].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)


def test_standardize_constant_row_is_zero():
    scores = torch.tensor([[5.0, 5.0, 5.0], [0.0, 1.0, 2.0]])
    z = standardize_rows(scores, torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(z[0], torch.zeros(3))
    assert torch.isfinite(z).all()


def test_standardize_all_seen_uses_all_items():
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    z = standardize_rows(scores, torch.ones(1, 3, dtype=torch.bool))
    assert z.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert z.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)


# NVDM


def nvdm_budget(epochs=30, seed=0, warmup=0.0) -> NVDMTraining:
    return NVDMTraining(
        n_topics=3, hidden=16, epochs=epochs, batch_size=8, kl_warmup=warmup, seed=seed
    )


def negative_elbo(model: NVDM, bags: torch.Tensor) -> float:
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return model.loss(bags, generator)[0].item()


def test_nvdm_training_lowers_negative_elbo():
    train = random_interactions(n_users=40, n_items=20)
    bags = torch.from_numpy(train.toarray())
    torch.manual_seed(0)
    untrained = NVDM(20, 3, 16)

    model, history = fit_nvdm(train, 0.01, nvdm_budget(), progress=False)

    assert len(history) == 30
    assert history[-1] < history[0]
    assert negative_elbo(model, bags) < negative_elbo(untrained, bags)


def test_nvdm_posterior_sigma_positive():
    train = random_interactions()
    model, _ = fit_nvdm(train, 0.005, nvdm_budget(epochs=3), progress=False)
    mu, sigma = model.encode(torch.from_numpy(train.toarray()))
    assert mu.shape == (25, 3)
    assert (sigma > 0).all()
    assert model.item_topics().shape == (12, 3)


def test_nvdm_same_seed_same_model():
    train = random_interactions()
    first, _ = fit_nvdm(train, 0.005, nvdm_budget(epochs=2, warmup=0.5), progress=False)
    second, _ = fit_nvdm(
        train, 0.005, nvdm_budget(epochs=2, warmup=0.5), progress=False
    )
    other, _ = fit_nvdm(train, 0.005, nvdm_budget(epochs=2, seed=1), progress=False)
    bags = torch.from_numpy(train.toarray())
    assert torch.equal(first.topic_bias(bags), second.topic_bias(bags))
    assert not torch.equal(first.topic_bias(bags), other.topic_bias(bags))


def test_nvdm_sparse_and_dense_encode_agree():
    bags = torch.from_numpy(random_interactions().toarray())
    model = NVDM(12, 3, 16)
    dense_mu, dense_sigma = model.encode(bags)
    sparse_mu, sparse_sigma = model.encode(bags.to_sparse())
    torch.testing.assert_close(dense_mu, sparse_mu)
    torch.testing.assert_close(dense_sigma, sparse_sigma)


def test_nvdm_topic_bias_is_log_distribution():
    bags = torch.from_numpy(random_interactions().toarray())
    bias = NVDM(12, 3, 16).topic_bias(bags)
    torch.testing.assert_close(bias.exp().sum(dim=1), torch.ones(25))


def test_nvdm_rejects_bad_input():
    with pytest.raises(ModelError, match="learning rate must be positive"):
        fit_nvdm(random_interactions(), 0.0, nvdm_budget())
    empty = sp.csr_matrix((4, 6), dtype=np.float32)
    with pytest.raises(ModelError, match="at least one user with training items"):
        fit_nvdm(empty, 0.01, nvdm_budget())


# KG projection


def test_kg_projection_matches_ridge_formula():
    x = random_interactions().toarray().astype(np.float64)
    e = np.random.default_rng(1).normal(size=(12, 4))
    gamma = 2.5
    xe = x @ e
    expected = np.linalg.solve(xe.T @ xe + gamma * np.eye(4), xe.T @ x)

    projection = fit_kg_projection(torch.from_numpy(x), torch.from_numpy(e), gamma)

    np.testing.assert_allclose(projection.numpy(), expected, rtol=1e-4, atol=1e-5)
    scores = kg_scores(
        torch.from_numpy(x).float(), torch.from_numpy(e).float(), projection
    )
    np.testing.assert_allclose(scores.numpy(), xe @ expected, rtol=1e-3, atol=1e-4)


def test_kg_projection_shrinks_with_gamma():
    x = torch.from_numpy(random_interactions().toarray())
    e = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    small = fit_kg_projection(x, e, 0.1).norm()
    large = fit_kg_projection(x, e, 1000.0).norm()
    assert large < small


def test_kg_projection_rejects_nonpositive_gamma():
    with pytest.raises(ModelError, match="gamma must be positive, got -1"):
        fit_kg_projection(torch.ones(2, 3), torch.ones(3, 2), -1.0)
