"""Test doubles for the unit tier: a synthetic dataset, a small real recommender and
a toy environment with a known optimum.

``StandInRecommender`` is a truncated-SVD matrix factorisation with the hybrid
recommender's interface (``score``, ``recommend``, ``user_topics``,
``item_topics``). The unit tests use it so that they run in seconds; the slow tests
run the same code on MovieLens-100K with the real hybrid recommender.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from gymnasium import spaces

from adaptrec.data.dataset import Dataset
from adaptrec.tuning.env import HyperparamTuningEnv

GENRES = ("Action", "Comedy", "Drama", "Horror")


def synthetic_dataset(
    n_users: int = 80, n_items: int = 120, density: float = 0.3, seed: int = 0
) -> Dataset:
    """Return ratings 1..5 drawn from a planted 3-factor model, with genres.

    Each item's main genre is the factor it loads on most, so genre and taste agree.
    """
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(n_users, 3))
    item_factors = rng.normal(size=(n_items, 3))
    item_bias = rng.normal(scale=0.5, size=n_items)
    true = 3.2 + item_bias + 0.8 * user_factors @ item_factors.T
    observed = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(observed)
    noisy = true[users, items] + rng.normal(scale=0.5, size=len(users))
    ratings = pd.DataFrame(
        {
            "user": users.astype(np.int64),
            "item": items.astype(np.int64),
            "rating": np.clip(np.round(noisy), 1, 5).astype(np.float64),
            "timestamp": rng.integers(0, 10**9, size=len(users)),
        }
    )
    main_genre = item_factors.argmax(axis=1)
    genres = [
        [GENRES[g]] + ([GENRES[3]] if rng.random() < 0.1 else []) for g in main_genre
    ]
    items_frame = pd.DataFrame(
        {
            "title": [f"item {i}" for i in range(n_items)],
            "year": np.full(n_items, np.nan),
            "genres": genres,
        }
    )
    return Dataset(
        name="synthetic",
        user_ids=np.array([str(u) for u in range(n_users)]),
        item_ids=np.array([str(i) for i in range(n_items)]),
        ratings=ratings,
        items=items_frame,
    )


def synthetic_content(dataset: Dataset, dim: int = 24, seed: int = 0) -> np.ndarray:
    """Return content vectors that share a direction per genre, plus noise."""
    rng = np.random.default_rng(seed)
    genre_vectors = {genre: rng.normal(size=dim) for genre in GENRES}
    content = rng.normal(scale=0.3, size=(dataset.n_items, dim))
    for i, item_genres in enumerate(dataset.items["genres"]):
        for genre in item_genres:
            content[i] += genre_vectors[genre]
    return content.astype(np.float32)


class StandInRecommender:
    """Truncated-SVD recommender with the hybrid recommender's interface.

    Four components stand in for the hybrid's: SVD collaborative filtering
    (``alpha``), content cosine (``w_content``), log popularity (``w_kg``) and SVD
    topics (``w_topic``), each z-scored per user. ``beta`` and ``gamma`` do not
    change the scores.
    """

    def __init__(
        self,
        train: sp.spmatrix,
        content: np.ndarray,
        n_factors: int = 6,
        n_topics: int = 4,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        dense = np.asarray(sp.csr_matrix(train).todense(), dtype=np.float64)
        self.n_users, self.n_items = dense.shape
        u, s, vt = np.linalg.svd(dense, full_matrices=False)
        self._train = torch.tensor(dense > 0, device=self.device)
        self._users = torch.tensor(u[:, :n_factors] * s[:n_factors], device=self.device)
        self._items = torch.tensor(vt[:n_factors].T, device=self.device)
        item_vectors = torch.tensor(content, dtype=torch.float64, device=self.device)
        self._content = torch.nn.functional.normalize(item_vectors, dim=1)
        profiles = torch.tensor(dense, device=self.device) @ self._content
        self._profiles = torch.nn.functional.normalize(profiles, dim=1)
        popularity = torch.tensor(np.log1p(dense.sum(axis=0)), device=self.device)
        self._popularity = popularity[None, :]
        self.n_topics = n_topics

    def score(
        self, users: torch.Tensor, hyperparams: Mapping[str, float]
    ) -> torch.Tensor:
        users = users.to(self.device)
        parts = {
            "alpha": self._users[users] @ self._items.T,
            "w_content": self._profiles[users] @ self._content.T,
            "w_kg": self._popularity.expand(len(users), -1),
            "w_topic": self._users[users, : self.n_topics]
            @ self._items[:, : self.n_topics].T,
        }
        total = torch.zeros(
            len(users), self.n_items, dtype=torch.float64, device=self.device
        )
        for name, part in parts.items():
            std = part.std(dim=1, keepdim=True).clamp(min=1e-8)
            total += hyperparams[name] * (part - part.mean(dim=1, keepdim=True)) / std
        return total.float()

    def recommend(
        self,
        users: torch.Tensor,
        hyperparams: Mapping[str, float],
        k: int,
        exclude_train: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(users, hyperparams)
        if exclude_train:
            scores = scores.masked_fill(
                self._train[users.to(self.device)], float("-inf")
            )
        top = torch.topk(scores, k, dim=1)
        return top.indices, top.values

    def user_topics(
        self, users: torch.Tensor, beta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self._users[users.to(self.device), : self.n_topics].float()
        return mu, torch.ones_like(mu)

    def item_topics(self, beta: float) -> torch.Tensor:
        return self._items[:, : self.n_topics].float()


class TargetPointEnv(gym.Env):
    """Walk a point on an integer grid toward a fixed target.

    The observation is the point scaled to ``[0, 1]`` per dimension; each action
    entry moves one coordinate by -1, 0 or +1, clipped to the grid. The reward is
    ``1 - L1 distance / max distance``, so it rises toward the target and peaks at
    1 there. Episodes start at a seeded random point and end after
    ``episode_length`` steps.
    """

    metadata = {"render_modes": []}

    def __init__(
        self, target: tuple[int, ...] = (8, 2), size: int = 11, episode_length: int = 12
    ) -> None:
        self.target = np.array(target)
        self.size = size
        self.episode_length = episode_length
        self.observation_space = spaces.Box(
            0.0, 1.0, shape=(len(target),), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete([3] * len(target))
        self.point = np.zeros(len(target), dtype=np.int64)
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "point" in options:
            self.point = np.array(options["point"], dtype=np.int64)
        else:
            self.point = self.np_random.integers(0, self.size, size=len(self.target))
        self._steps = 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.point = np.clip(self.point + np.asarray(action) - 1, 0, self.size - 1)
        self._steps += 1
        return (
            self._observation(),
            self.reward(),
            False,
            self._steps >= self.episode_length,
            {"hyperparams": {f"x{j}": float(v) for j, v in enumerate(self.point)}},
        )

    def distance(self) -> int:
        return int(np.abs(self.point - self.target).sum())

    def reward(self) -> float:
        return 1.0 - self.distance() / ((self.size - 1) * len(self.target))

    def _observation(self) -> np.ndarray:
        return (self.point / (self.size - 1)).astype(np.float32)


def small_env(recommender, simulator, space, content, **options) -> HyperparamTuningEnv:
    """Return a tuning environment with 16 users per step and 5-step episodes."""
    settings = {"users_per_step": 16, "episode_length": 5, "seed": 0}
    settings.update(options)
    return HyperparamTuningEnv(
        recommender, simulator, space, item_content=content, **settings
    )
