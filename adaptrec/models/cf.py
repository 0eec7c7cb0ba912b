"""EASE, the collaborative-filtering component of the hybrid score.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019)
learns an item-item weight matrix B in closed form:
``P = (X^T X + lambda I)^-1``, ``B = I - P / diag(P)`` (column-wise), so
``diag(B) = 0``, and scores users by ``X B``.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch

from adaptrec.models.common import ModelError


def fit_ease(
    train: sp.csr_matrix, l2: float, device: torch.device | None = None
) -> torch.Tensor:
    """Fit EASE on a binary user-item matrix.

    The inverse is taken in float64 because ``X^T X`` of a popular catalogue is
    badly conditioned for small ``l2``; the result is returned as float32.

    Args:
        train: Binary ``[n_users, n_items]`` CSR matrix of training interactions.
        l2: The ridge penalty lambda, > 0.
        device: Where to compute and keep ``B``; the CPU when None.

    Returns:
        ``B``, a ``[n_items, n_items]`` float32 tensor on ``device``.

    Raises:
        ModelError: when ``l2`` is not positive.
    """
    if not l2 > 0:
        raise ModelError(f"EASE lambda must be positive, got {l2}")
    device = device or torch.device("cpu")
    gram = torch.from_numpy((train.T @ train).toarray()).to(device, torch.float64)
    gram.diagonal().add_(l2)
    precision = torch.linalg.inv(gram)
    weights = -precision / precision.diagonal().unsqueeze(0)
    weights.diagonal().zero_()
    return weights.float()


def ease_scores(train_rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Return ``X B`` for dense binary user rows ``[B, n_items]``."""
    if train_rows.shape[1] != weights.shape[0]:
        raise ModelError(
            f"user rows have {train_rows.shape[1]} items but EASE was fitted on "
            f"{weights.shape[0]}"
        )
    return train_rows @ weights
