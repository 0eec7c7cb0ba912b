"""Helpers shared by the recommender's components: device, cache folder, z-scores."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from adaptrec.data import packaged

# Below this standard deviation a user's component scores count as constant, so
# the component contributes 0 for that user instead of amplifying float noise.
_MIN_STD = 1e-8


class ModelError(ValueError):
    """A request to the recommender is invalid: wrong shape, index or argument."""


class ArtifactError(ModelError):
    """A saved model artefact is missing, corrupt or in an unknown format."""


def default_device() -> torch.device:
    """Return CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_cache_dir() -> Path:
    """Return the model cache, ``models/`` inside the data loader's cache folder."""
    return packaged.default_cache_dir() / "models"


def content_hash(parts: Iterable[str]) -> str:
    """Return a SHA-256 hex digest of ``parts``, each terminated by a NUL byte."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def sparse_to_dense(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """Copy a CSR matrix into a dense float32 tensor on ``device``."""
    return torch.from_numpy(matrix.toarray().astype(np.float32)).to(device)


def standardize_rows(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Z-score each row of ``scores`` over the items the user has not seen.

    The mean and standard deviation come from the candidate items only (where
    ``seen`` is False), because those are the items a ranking compares. Training
    items often score far higher, and including them would shrink the spread of
    the candidates by a different factor for each component. A row whose user has
    seen every item uses all items. Rows whose standard deviation is below
    ``_MIN_STD`` become 0, so a constant component adds nothing to that user's
    ranking.

    Args:
        scores: ``[B, n_items]`` float tensor.
        seen: ``[B, n_items]`` bool tensor, True for the user's training items.

    Returns:
        ``[B, n_items]`` float32 tensor.
    """
    scores = scores.float()
    candidates = ~seen
    all_seen = ~candidates.any(dim=1, keepdim=True)
    candidates = candidates | all_seen
    weights = candidates.float()
    count = weights.sum(dim=1, keepdim=True)
    mean = (scores * weights).sum(dim=1, keepdim=True) / count
    centred = scores - mean
    variance = (centred.square() * weights).sum(dim=1, keepdim=True) / count
    std = variance.sqrt()
    constant = std < _MIN_STD
    z = centred / torch.where(constant, torch.ones_like(std), std)
    return torch.where(constant, torch.zeros_like(z), z)
