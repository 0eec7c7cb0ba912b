"""Gymnasium environment in which an agent tunes the hybrid recommender online.

One episode is one simulated day of traffic. Each step serves a batch of
``users_per_step`` users drawn uniformly from the user pool. The observation
describes those users (see :mod:`adaptrec.tuning.state`). The action moves every
hyperparameter by ``-step``, ``0`` or ``+step``, clipped to its bounds. The
recommender then serves each user a top-``k`` slate under the new values, and the
user simulator decides the clicks.

Reward: each served user contributes 1 for a click and 0 otherwise, and the step's
reward is the mean over the step's users, the batch's click-through rate in
``[0, 1]``. Episodes end by truncation after ``episode_length`` steps and never
terminate.

NOTE: ``HybridRecommender`` trains NVDM and the KG projection on the first use of
each ``beta`` and ``gamma`` value. Call its ``prepare()`` before training an agent,
or the first step that reaches a new value also trains a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from adaptrec.evaluation.simulator import UserSimulator
from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.tuning.state import StateTracker, TunableRecommender

logger = logging.getLogger(__name__)

START_MODES = ("initial", "random")

DaySchedule = int | float | Callable[[int], float]


class TuningEnvError(ValueError):
    """The tuning environment was configured or stepped with invalid input."""


def apply_action(
    space: HyperparamSpace, hyperparams: HyperparamSet, action: Sequence[int]
) -> HyperparamSet:
    """Move each hyperparameter by ``(action - 1) * step``, clipped to its bounds.

    Action ``0`` lowers a value by one step, ``1`` keeps it and ``2`` raises it.
    """
    if len(action) != len(space):
        raise TuningEnvError(
            f"action has {len(action)} entries but the space tunes {len(space)} "
            f"hyperparameters {space.names}"
        )
    values = {}
    for spec, choice in zip(space, action, strict=True):
        if choice not in (0, 1, 2):
            raise TuningEnvError(
                f"action for {spec.name!r} must be 0 (-step), 1 (keep) or 2 (+step), "
                f"got {choice!r}"
            )
        values[spec.name] = spec.clip(
            hyperparams[spec.name] + (int(choice) - 1) * spec.step
        )
    return HyperparamSet(values)


def random_grid_point(
    space: HyperparamSpace, rng: np.random.Generator
) -> HyperparamSet:
    """Draw each hyperparameter uniformly from its step grid."""
    return HyperparamSet({spec.name: float(rng.choice(spec.grid())) for spec in space})


class HyperparamTuningEnv(gym.Env):
    """Tune a recommender's hyperparameters against simulated users' clicks.

    Args:
        recommender: Serves slates with ``recommend(users, hyperparams, k)``.
        simulator: A fitted :class:`UserSimulator` that decides the clicks.
        space: The tuned hyperparameters, their bounds and steps.
        item_content: Content embedding per item for the history features; read
            from ``recommender.embeddings.content`` when omitted.
        k: Slate length.
        users_per_step: Users served per step; the reward is their click rate.
        episode_length: Steps per episode.
        day: Simulated day of every episode, or a function from the episode index
            (0 for the first reset) to the day.
        start: ``"initial"`` starts each episode from the space's initial values,
            ``"random"`` from a seeded random grid point.
        users: Pool of user indices to serve; every user when omitted.
        history_length: Clicked items averaged into the history features.
        history_dim: Principal components kept of the content embeddings.
        seed: Seeds the first reset when ``reset`` gets no seed.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        recommender: TunableRecommender,
        simulator: UserSimulator,
        space: HyperparamSpace,
        *,
        item_content: Any = None,
        k: int = 10,
        users_per_step: int = 64,
        episode_length: int = 20,
        day: DaySchedule = 0,
        start: str = "initial",
        users: Sequence[int] | np.ndarray | None = None,
        history_length: int = 50,
        history_dim: int = 16,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _check_positive_int("k", k)
        _check_positive_int("users_per_step", users_per_step)
        _check_positive_int("episode_length", episode_length)
        if k > recommender.n_items:
            raise TuningEnvError(
                f"k={k} exceeds the catalogue size n_items={recommender.n_items}"
            )
        if start not in START_MODES:
            raise TuningEnvError(f"start must be one of {START_MODES}, got {start!r}")
        if not callable(day) and not (isinstance(day, int | float) and day >= 0):
            raise TuningEnvError(
                f"day must be a number >= 0 or a function of the episode index, "
                f"got {day!r}"
            )
        if (
            simulator.n_users != recommender.n_users
            or simulator.n_items != recommender.n_items
        ):
            raise TuningEnvError(
                f"simulator ({simulator.n_users} users, {simulator.n_items} items) and "
                f"recommender ({recommender.n_users} users, {recommender.n_items} "
                f"items) must cover the same dataset"
            )
        if item_content is None:
            embeddings = getattr(recommender, "embeddings", None)
            item_content = getattr(embeddings, "content", None)
            if item_content is None:
                raise TuningEnvError(
                    "item_content is required when the recommender has no "
                    "embeddings.content; pass ItemEmbeddings.content"
                )

        self.recommender = recommender
        self.simulator = simulator
        self.space = space
        self.k = k
        self.users_per_step = users_per_step
        self.episode_length = episode_length
        self.day_schedule = day
        self.start = start
        self.user_pool = _checked_pool(users, recommender.n_users)
        self.tracker = StateTracker(
            recommender,
            space,
            item_content,
            history_length=history_length,
            history_dim=history_dim,
        )
        self._seed = seed

        low, high = self.tracker.observation_bounds()
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = spaces.MultiDiscrete([3] * len(space), seed=seed)

        self.episode = -1
        self.day = 0.0
        self.hyperparams = space.initial()
        self._users = self.user_pool[:0]
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None and self.episode < 0:
            seed = self._seed
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self.episode += 1
        self.day = self._day_of(self.episode)
        self._steps = 0
        self.tracker.reset()
        if self.start == "random":
            self.hyperparams = random_grid_point(self.space, self.np_random)
        else:
            self.hyperparams = self.space.initial()
        self._users = self._draw_users()
        return self._observation(), self._info(clicks=0, served=0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.episode < 0:
            raise TuningEnvError("call reset() before step()")
        action = np.asarray(action).reshape(-1)
        if not self.action_space.contains(action.astype(self.action_space.dtype)):
            raise TuningEnvError(
                f"action {action.tolist()} is not in "
                f"MultiDiscrete({[3] * len(self.space)})"
            )
        self.hyperparams = apply_action(self.space, self.hyperparams, action.tolist())

        # Serve the observed users under the new values and let them click.
        users = torch.as_tensor(
            self._users, dtype=torch.long, device=self.recommender.device
        )
        with torch.no_grad():
            items, _ = self.recommender.recommend(users, self.hyperparams, self.k)
        items_np = items.cpu().numpy()
        clicks, positions = self.simulator.simulate(
            self._users, items_np, self.day, self.np_random
        )
        self.tracker.record(items_np, positions)
        reward = float(clicks.mean())

        self._steps += 1
        truncated = self._steps >= self.episode_length
        self._users = self._draw_users()
        info = self._info(clicks=int(clicks.sum()), served=len(clicks))
        return self._observation(), reward, False, truncated, info

    def _observation(self) -> np.ndarray:
        users = torch.as_tensor(
            self._users, dtype=torch.long, device=self.recommender.device
        )
        return self.tracker.observation(users, self.hyperparams)

    def _info(self, clicks: int, served: int) -> dict[str, Any]:
        return {
            "hyperparams": self.hyperparams.values_dict,
            "version": self.hyperparams.version,
            "day": self.day,
            "clicks": clicks,
            "served": served,
        }

    def _draw_users(self) -> np.ndarray:
        picks = self.np_random.integers(
            0, len(self.user_pool), size=self.users_per_step
        )
        return self.user_pool[picks]

    def _day_of(self, episode: int) -> float:
        if callable(self.day_schedule):
            day = self.day_schedule(episode)
            if not isinstance(day, int | float | np.number) or not day >= 0:
                raise TuningEnvError(
                    f"the day schedule returned {day!r} for episode {episode}; "
                    "expected a number >= 0"
                )
            return float(day)
        return float(self.day_schedule)


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise TuningEnvError(f"{name} must be an integer >= 1, got {value!r}")


def _checked_pool(users: Sequence[int] | np.ndarray | None, n_users: int) -> np.ndarray:
    if users is None:
        return np.arange(n_users, dtype=np.int64)
    pool = np.asarray(users)
    if pool.ndim != 1 or len(pool) == 0 or not np.issubdtype(pool.dtype, np.integer):
        raise TuningEnvError("users must be a non-empty 1-D sequence of user indices")
    if pool.min() < 0 or pool.max() >= n_users:
        raise TuningEnvError(
            f"users must lie in 0..{n_users - 1}; got {pool.min()}..{pool.max()}"
        )
    return pool.astype(np.int64)
