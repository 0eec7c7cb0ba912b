"""Precomputed scores of every training user for each live hyperparameter set.

``HybridRecommender.recommend`` validates the hyperparameters and weights four
component matrices on every call, which is most of a request's model time. A
live set's weights do not change, so :class:`ScoreCache` calls the recommender's
``score`` for every training user once when the set goes live and sets each
user's training items to -inf, as ``recommend(exclude_train=True)`` does. A
request then costs a row lookup and a top-k. Sets whose matrix would exceed
the memory budget are not cached, and their requests go through ``recommend``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from adaptrec.hyperparams import HyperparamSet

log = logging.getLogger(__name__)

# Users scored per call while filling a matrix, to bound the temporary memory.
_FILL_BATCH = 1024


class ScoreCache:
    """Score matrices ``[n_users, n_items]`` per hyperparameter version.

    Args:
        recommender: Object with ``score(users, hyperparams)``, ``n_items`` and a
            binary CSR ``train`` matrix.
        device: Device the matrices live on, the recommender's.
        max_bytes: Memory budget for all matrices together; 0 disables caching.
    """

    def __init__(self, recommender: Any, device: torch.device, max_bytes: int) -> None:
        self.recommender = recommender
        self.device = device
        self.max_bytes = max_bytes
        train = sp.csr_matrix(recommender.train)
        self.n_users, self.n_items = train.shape
        self._train = train
        self._matrices: dict[str, torch.Tensor] = {}

    @property
    def versions(self) -> list[str]:
        return sorted(self._matrices)

    def rebuild(self, sets: Sequence[HyperparamSet]) -> None:
        """Cache the matrices of ``sets`` in order, within the budget; drop others.

        Matrices already cached for a version are reused. The new mapping
        replaces the old one in one assignment, so a request sees either.
        """
        matrix_bytes = self.n_users * self.n_items * 4
        matrices: dict[str, torch.Tensor] = {}
        for hyperparams in sets:
            version = hyperparams.version
            if (len(matrices) + 1) * matrix_bytes > self.max_bytes:
                log.info(
                    "score cache: version %s not cached, because %d matrices of "
                    "%.1f MiB exceed the budget of %.1f MiB",
                    version,
                    len(matrices) + 1,
                    matrix_bytes / 2**20,
                    self.max_bytes / 2**20,
                )
                continue
            cached = self._matrices.get(version)
            matrices[version] = (
                cached if cached is not None else self._fill(hyperparams, version)
            )
        self._matrices = matrices

    def top_k(
        self, version: str, users: torch.Tensor, k: int, exclude: list[list[int]] | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Return the top-``k`` items and scores of ``users``, or None if not cached.

        The caller keeps ``k`` within the items each user has left, as
        ``recommend`` requires.
        """
        matrix = self._matrices.get(version)
        if matrix is None:
            return None
        with torch.inference_mode():
            scores = matrix.index_select(0, users)
            if exclude is not None:
                for row, items in enumerate(exclude):
                    if items:
                        scores[row, items] = -torch.inf
            values, indices = torch.topk(scores, k, dim=1)
        return indices, values

    def _fill(self, hyperparams: Mapping[str, float], version: str) -> torch.Tensor:
        started = time.perf_counter()
        parts = []
        with torch.inference_mode():
            for start in range(0, self.n_users, _FILL_BATCH):
                end = min(start + _FILL_BATCH, self.n_users)
                users = torch.arange(start, end, device=self.device)
                scores = self.recommender.score(users, hyperparams).clone()
                seen = self._train[start:end].toarray() > 0
                scores.masked_fill_(torch.from_numpy(seen).to(self.device), -torch.inf)
                parts.append(scores)
            matrix = torch.cat(parts) if parts else torch.empty(0, self.n_items)
        log.info(
            "score cache: cached version %s for %d users in %.2f s",
            version,
            self.n_users,
            time.perf_counter() - started,
        )
        return matrix


def budget_bytes(megabytes: float) -> int:
    """Convert a budget in MiB to bytes; negative budgets count as 0."""
    return max(0, int(np.floor(megabytes * 2**20)))
