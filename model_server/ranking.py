"""Top-K slates from a loaded recommender, for known and unknown users."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .errors import ResponseEncodingError
from .request_types import Catalogue, UserRequest
from .responses import Slate
from .rollouts import COLD_START_VERSION
from .score_cache import ScoreCache


class Ranker:
    """Ranks items for the users of one request.

    Args:
        model_name: Name used in error messages.
        recommender: The loaded recommender (see ``model.Recommender``).
        catalogue: Its raw user and item ids.
        device: Torch device of the recommender.
        score_cache: Precomputed scores of the live sets.
    """

    def __init__(
        self,
        model_name: str,
        recommender: Any,
        catalogue: Catalogue,
        device: torch.device,
        score_cache: ScoreCache,
    ) -> None:
        self.model_name = model_name
        self.recommender = recommender
        self.catalogue = catalogue
        self.device = device
        self.score_cache = score_cache
        self._train = sp.csr_matrix(recommender.train)

        # The cold-start ranking is the same for every unknown user, so it is
        # sorted once here and each request only skips its excluded items.
        cold_scores = recommender.cold_start_scores().detach().cpu().numpy()
        self._cold_ranking = np.argsort(-cold_scores, kind="stable")
        self._cold_scores = cold_scores.astype(np.float64)

    def rank(
        self,
        users: Sequence[UserRequest],
        hyperparams: Mapping[str, float],
        version: str,
    ) -> list[Slate]:
        """Rank items for known users with one hyperparameter set, in order."""
        # The recommender rejects a k larger than the items a user has left, so
        # each user's k is capped at that count. Users with at least the largest
        # capped k left share one batch, and the rare others are ranked one by one.
        left = [self._unseen_count(user) for user in users]
        sizes = [min(user.k, count) for user, count in zip(users, left, strict=True)]
        batch_k = max(sizes)
        batch = [row for row in range(len(users)) if left[row] >= batch_k]
        groups = [(batch, batch_k)]
        for row in range(len(users)):
            if left[row] < batch_k:
                groups.append(([row], sizes[row]))

        slates: dict[int, Slate] = {}
        for rows, k in groups:
            if k == 0:
                items = np.empty((len(rows), 0), dtype=np.int64)
                scores = np.empty((len(rows), 0), dtype=np.float64)
            else:
                group = [users[row] for row in rows]
                items, scores = self._recommend(group, hyperparams, version, k)
            for position, row in enumerate(rows):
                slates[row] = self._slate(
                    users[row], items[position], scores[position], version, False
                )
        return [slates[row] for row in range(len(users))]

    def _recommend(
        self,
        users: Sequence[UserRequest],
        hyperparams: Mapping[str, float],
        version: str,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = [self.catalogue.user_index[user.user_id] for user in users]
        # torch.from_numpy is several times faster than torch.tensor on a list.
        indices = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)
        exclude = None
        if any(user.exclude for user in users):
            exclude = [list(user.exclude) for user in users]
        cached = self.score_cache.top_k(version, indices, k, exclude)
        if cached is not None:
            items, scores = cached
        else:
            with torch.inference_mode():
                items, scores = self.recommender.recommend(
                    indices, hyperparams, k, exclude_train=True, exclude=exclude
                )
        return items.cpu().numpy(), scores.cpu().numpy().astype(np.float64)

    def _unseen_count(self, user: UserRequest) -> int:
        """Count the items left for a known user once seen and excluded ones go."""
        index = self.catalogue.user_index[user.user_id]
        start, end = self._train.indptr[index], self._train.indptr[index + 1]
        left = self.catalogue.n_items - (end - start)
        if user.exclude:
            seen = set(self._train.indices[start:end].tolist())
            left -= len(set(user.exclude) - seen)
        return int(left)

    def rank_cold_start(self, user: UserRequest) -> Slate:
        if user.exclude:
            excluded = set(user.exclude)
            chosen = []
            for item in self._cold_ranking:
                if item not in excluded:
                    chosen.append(item)
                    if len(chosen) == user.k:
                        break
            top = np.asarray(chosen, dtype=np.int64)
        else:
            top = self._cold_ranking[: user.k]
        return self._slate(
            user, top, self._cold_scores[top], COLD_START_VERSION, cold_start=True
        )

    def _slate(
        self,
        user: UserRequest,
        items: np.ndarray,
        scores: np.ndarray,
        version: str,
        cold_start: bool,
    ) -> Slate:
        items = items[: user.k]
        scores = scores[: user.k]
        if not np.isfinite(scores).all():
            raise ResponseEncodingError(
                f"model {self.model_name} scored user {user.user_id!r} with non-finite "
                f"values {scores.tolist()}; JSON cannot carry them and the ranking "
                "is unreliable"
            )
        return Slate(
            user_id=user.user_id,
            items=self.catalogue.item_ids[items].tolist(),
            scores=scores.tolist(),
            version=version,
            cold_start=cold_start,
        )
