"""Serving policies for the simulated click-through test.

:meth:`UserSimulator.run_days <adaptrec.evaluation.simulator.UserSimulator.run_days>`
calls ``policy(day, users)`` for each batch of users and, when given,
``feedback(clicks, positions)`` with the outcome. :class:`FixedPolicy` serves one
hyperparameter set throughout (the grid-search and Bayesian-optimisation results, or
the defaults). :class:`DQNTuner` lets a trained agent pick the hyperparameters before
every batch, either frozen or still learning from the clicks it receives::

    frozen = DQNTuner(agent, recommender, space, content)
    simulator.run_days(frozen.recommend, 1280, days=7, seed=0, feedback=frozen.observe)
    online = DQNTuner(agent, recommender, space, content, learn=True)
    simulator.run_days(online.recommend, 1280, days=7, seed=0, feedback=online.observe)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.tuning.dqn import DQNAgent, DQNError
from adaptrec.tuning.env import HyperparamTuningEnv, apply_action
from adaptrec.tuning.state import StateTracker, TunableRecommender


def serve(
    recommender: TunableRecommender, users: Any, hyperparams: HyperparamSet, k: int
) -> np.ndarray:
    """Return the top-``k`` slates ``[B, k]`` for ``users`` as a NumPy array."""
    tensor = torch.as_tensor(
        np.asarray(users), dtype=torch.long, device=recommender.device
    )
    with torch.no_grad():
        items, _ = recommender.recommend(tensor, hyperparams, k)
    return items.cpu().numpy()


class FixedPolicy:
    """Serve every batch under one hyperparameter set."""

    def __init__(
        self, recommender: TunableRecommender, hyperparams: HyperparamSet, k: int = 10
    ) -> None:
        self.recommender = recommender
        self.hyperparams = hyperparams
        self.k = k

    def __call__(self, day: int, users: Any) -> np.ndarray:
        return serve(self.recommender, users, self.hyperparams, self.k)


@dataclass
class TunerStep:
    """One served batch: the day, the hyperparameters in force and the clicks."""

    day: int
    version: str
    values: dict[str, float]
    served: int
    clicks: int = 0


class DQNTuner:
    """A trained agent that adjusts the hyperparameters before each served batch.

    The state is built exactly as in the training environment: a day starts with
    an empty click history, and the hyperparameters carry over from one day to the
    next.

    Args:
        agent: The trained agent.
        recommender: Serves the slates.
        space: The hyperparameters the agent was trained on, in the same order.
        item_content: Content embedding per item, as given to the environment.
        k: Slate length.
        learn: Keep learning from the observed clicks. The tuner then works on a
            copy of ``agent``, so the trained agent stays as it was, acts
            epsilon-greedily with ``agent.config.end_e`` and runs one gradient step
            per served batch once the replay buffer contains a full batch.
        start: Hyperparameters before the first batch; the space's initial values
            when omitted.
        history_length: As in the training environment.
        history_dim: As in the training environment.
    """

    def __init__(
        self,
        agent: DQNAgent,
        recommender: TunableRecommender,
        space: HyperparamSpace,
        item_content: Any,
        *,
        k: int = 10,
        learn: bool = False,
        start: HyperparamSet | None = None,
        history_length: int = 50,
        history_dim: int = 16,
    ) -> None:
        self.tracker = StateTracker(
            recommender,
            space,
            item_content,
            history_length=history_length,
            history_dim=history_dim,
        )
        if (
            agent.observation_dim != self.tracker.observation_dim
            or agent.n_heads != len(space)
        ):
            raise DQNError(
                f"the agent expects {agent.observation_dim} observation values and "
                f"{agent.n_heads} hyperparameters, but this tuner builds "
                f"{self.tracker.observation_dim} and tunes {len(space)}; use the "
                "space, history_length and history_dim the agent was trained with"
            )
        self.agent = copy.deepcopy(agent) if learn else agent
        if learn:
            self.agent.epsilon = self.agent.config.end_e
        self.recommender = recommender
        self.space = space
        self.k = k
        self.learn = learn
        self.hyperparams = (
            space.validate(start) if start is not None else space.initial()
        )
        self.steps: list[TunerStep] = []
        self.losses: list[float] = []
        self._day: int | None = None
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        self._pending_reward: float | None = None
        self._items: np.ndarray | None = None

    @classmethod
    def for_env(
        cls,
        agent: DQNAgent,
        env: HyperparamTuningEnv,
        *,
        learn: bool = False,
        start: HyperparamSet | None = None,
    ) -> DQNTuner:
        """Build a tuner with ``env``'s recommender, space, slate length and state
        settings, so the agent gets the features it was trained on."""
        return cls(
            agent,
            env.recommender,
            env.space,
            env.tracker.item_content,
            k=env.k,
            learn=learn,
            start=start,
            history_length=env.tracker.history_length,
            history_dim=env.tracker.history_dim,
        )

    def recommend(self, day: int, users: Any) -> np.ndarray:
        """Pick the hyperparameters for ``users`` and return their slates ``[B, k]``."""
        if self._day != day:
            self.tracker.reset()
            self._day = day
        users = np.asarray(users)
        tensor = torch.as_tensor(
            users, dtype=torch.long, device=self.recommender.device
        )
        observation = self.tracker.observation(tensor, self.hyperparams)
        if self.learn:
            self._learn_from_last_batch(observation)

        action = self.agent.act(observation, greedy=not self.learn)
        self.hyperparams = apply_action(self.space, self.hyperparams, action.tolist())
        self._items = serve(self.recommender, users, self.hyperparams, self.k)
        self._pending = (observation, action)
        self._pending_reward = None
        self.steps.append(
            TunerStep(
                day=day,
                version=self.hyperparams.version,
                values=self.hyperparams.values_dict,
                served=len(users),
            )
        )
        return self._items

    __call__ = recommend

    def observe(self, clicks: Any, positions: Any) -> None:
        """Record the clicks on the slates from the last :meth:`recommend` call."""
        if self._items is None:
            raise DQNError("observe() needs a preceding recommend() call")
        clicks = np.asarray(clicks)
        if clicks.shape != (len(self._items),):
            raise DQNError(
                f"clicks must have shape ({len(self._items)},), one per served slate, "
                f"got {clicks.shape}"
            )
        self.tracker.record(self._items, positions)
        self._pending_reward = float(clicks.mean())
        self.steps[-1].clicks = int(clicks.sum())

    def _learn_from_last_batch(self, observation: np.ndarray) -> None:
        if self._pending is None or self._pending_reward is None:
            return
        previous, action = self._pending
        self.agent.remember(previous, action, self._pending_reward, observation, False)
        loss = self.agent.after_step(train_frequency=1)
        if loss is not None:
            self.losses.append(loss)
