"""Deep Q-learning with action branching for hyperparameter tuning.

The agent follows DQN (Mnih et al., "Human-level control through deep
reinforcement learning", Nature 2015): experience replay, a target network and an
epsilon-greedy policy whose epsilon falls linearly, trained with the Huber loss and
Adam. Names follow CleanRL's ``dqn.py`` (``q_network``, ``target_network``,
``td_target``, ``epsilon``).

The action space is ``MultiDiscrete([3] * n)``, one {-step, 0, +step} choice per
hyperparameter. A flat Q-head would need ``3 ** n`` outputs, so the network branches
as in Branching Dueling Q-Networks (Tavakoli, Pardo and Kormushev, "Action Branching
Architectures for Deep Reinforcement Learning", AAAI 2018). A shared torso feeds one
head of 3 Q-values per hyperparameter, plus a shared state value when ``dueling``.
Every head regresses onto one shared TD target, the reward plus ``gamma`` times the
mean over heads of each head's next-state value, so the output grows linearly with
the number of hyperparameters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from adaptrec.hyperparams import HyperparamSet

logger = logging.getLogger(__name__)

N_ACTIONS = 3
CHECKPOINT_FORMAT = 1


class DQNError(ValueError):
    """The DQN agent was configured, loaded or called with invalid input."""


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of the DQN agent itself.

    Attributes:
        episodes: Training episodes; the full protocol uses 100,000.
        gamma: Discount factor.
        learning_rate: Adam learning rate.
        batch_size: Transitions per gradient step.
        buffer_size: Replay buffer capacity in transitions.
        learning_starts: Environment steps before the first gradient step.
        train_frequency: Environment steps per gradient step.
        target_network_frequency: Environment steps between target updates.
        tau: Target update rate; 1.0 copies the Q-network (hard update), smaller
            values blend it in (soft update).
        start_e: Epsilon at the first step.
        end_e: Epsilon after the decay, and the exploration rate of online learning.
        exploration_fraction: Fraction of all training steps over which epsilon
            falls linearly from ``start_e`` to ``end_e``.
        hidden_sizes: Widths of the shared torso's layers.
        dueling: Add a shared state value to every head's centred advantages.
        double_q: Pick next actions with the Q-network and value them with the
            target network (double DQN), instead of the target network's max.
        max_grad_norm: Gradient norm clip per step.
        seed: Seeds the network initialisation, exploration and replay sampling.
        device: Torch device; CUDA when available, else the CPU.
    """

    episodes: int = 100_000
    gamma: float = 0.95
    learning_rate: float = 2.5e-4
    batch_size: int = 128
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    train_frequency: int = 4
    target_network_frequency: int = 1_000
    tau: float = 1.0
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.5
    hidden_sizes: tuple[int, ...] = (256, 256)
    dueling: bool = True
    double_q: bool = True
    max_grad_norm: float = 10.0
    seed: int = 1
    device: str | None = None

    def __post_init__(self) -> None:
        integers = (
            "episodes",
            "batch_size",
            "buffer_size",
            "train_frequency",
            "target_network_frequency",
        )
        for name in integers:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DQNError(
                    f"DQN setting {name} must be an integer >= 1, got {value!r}"
                )
        if not isinstance(self.learning_starts, int) or self.learning_starts < 0:
            raise DQNError(
                f"DQN setting learning_starts must be an integer >= 0, "
                f"got {self.learning_starts!r}"
            )
        ranges = {
            "gamma": (0.0, 1.0),
            "tau": (0.0, 1.0),
            "start_e": (0.0, 1.0),
            "end_e": (0.0, 1.0),
            "exploration_fraction": (0.0, 1.0),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise DQNError(
                    f"DQN setting {name} must lie in [{low}, {high}], got {value}"
                )
        if self.end_e > self.start_e:
            raise DQNError(
                f"DQN setting end_e ({self.end_e}) must not exceed start_e "
                f"({self.start_e}); epsilon only falls"
            )
        if self.tau == 0:
            raise DQNError(
                "DQN setting tau must be > 0; 0 would never update the target"
            )
        if not self.learning_rate > 0 or not self.max_grad_norm > 0:
            raise DQNError(
                "DQN settings learning_rate and max_grad_norm must be positive"
            )
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise DQNError(
                f"DQN setting hidden_sizes must be a non-empty list of widths >= 1, "
                f"got {self.hidden_sizes!r}"
            )

    def resolved_device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class BranchingQNetwork(nn.Module):
    """Shared torso with one head of ``n_actions`` Q-values per action dimension."""

    def __init__(
        self,
        observation_dim: int,
        n_heads: int,
        hidden_sizes: Sequence[int],
        n_actions: int = N_ACTIONS,
        dueling: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = observation_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.torso = nn.Sequential(*layers)
        self.heads = nn.Linear(width, n_heads * n_actions)
        self.value = nn.Linear(width, 1) if dueling else None
        self.n_heads = n_heads
        self.n_actions = n_actions

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Return Q-values of shape ``[B, n_heads, n_actions]``."""
        features = self.torso(observations)
        q_values = self.heads(features).view(-1, self.n_heads, self.n_actions)
        if self.value is None:
            return q_values
        # Dueling: Q_d(s, a) = V(s) + A_d(s, a) - mean_a A_d(s, a).
        advantages = q_values - q_values.mean(dim=2, keepdim=True)
        return self.value(features)[:, :, None] + advantages


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions, kept in host memory.

    Sampled batches are copied to the device, so the buffer's size is bounded by
    host memory rather than GPU memory.
    """

    def __init__(self, capacity: int, observation_dim: int, n_heads: int) -> None:
        self.capacity = capacity
        self.observations = np.zeros((capacity, observation_dim), dtype=np.float32)
        self.next_observations = np.zeros((capacity, observation_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, n_heads), dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observation: np.ndarray,
        next_observation: np.ndarray,
        action: np.ndarray,
        reward: float,
        terminated: bool,
    ) -> None:
        """Store one transition, overwriting the oldest once full."""
        i = self.position
        self.observations[i] = observation
        self.next_observations[i] = next_observation
        self.actions[i] = action
        self.rewards[i] = reward
        self.dones[i] = float(terminated)
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator, device: torch.device
    ) -> tuple[torch.Tensor, ...]:
        """Return ``(observations, actions, rewards, next_observations, dones)``."""
        index = rng.integers(0, self.size, size=batch_size)
        arrays = (
            self.observations[index],
            self.actions[index],
            self.rewards[index],
            self.next_observations[index],
            self.dones[index],
        )
        return tuple(torch.from_numpy(a).to(device, non_blocking=True) for a in arrays)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """Return epsilon at step ``t``, falling linearly from ``start_e`` to ``end_e``."""
    if duration <= 0:
        return end_e
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def branching_td_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    next_q_target: torch.Tensor,
    gamma: float,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the shared TD target ``[B]`` of a branching Q-network.

    ``td_target = r + gamma * (1 - done) * mean_d Q_target_d(s', a'_d)``, where
    ``a'_d`` maximises head ``d`` of ``next_q_online`` when given (double DQN),
    else of ``next_q_target``.
    """
    chooser = next_q_target if next_q_online is None else next_q_online
    next_actions = chooser.argmax(dim=2, keepdim=True)
    next_values = next_q_target.gather(2, next_actions).squeeze(2)
    return rewards + gamma * (1.0 - dones) * next_values.mean(dim=1)


@dataclass
class TrainingHistory:
    """Per-episode record of one :meth:`DQNAgent.train` run.

    Attributes:
        episode_returns: Sum of rewards per episode.
        episode_mean_rewards: Mean reward per step (the click-through rate when the
            reward is a batch's click rate).
        losses: Mean TD loss of the episode's gradient steps; NaN when none ran.
        epsilons: Epsilon at each episode's last step.
        hyperparams: Hyperparameter values at each episode's end, one row per
            episode in ``hyperparam_names`` order (empty when the environment's
            info carries no ``hyperparams``).
        hyperparam_names: Column names of ``hyperparams``.
        steps: Environment steps taken.
        wall_time_s: Seconds spent in training.
    """

    episode_returns: list[float] = field(default_factory=list)
    episode_mean_rewards: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epsilons: list[float] = field(default_factory=list)
    hyperparams: list[list[float]] = field(default_factory=list)
    hyperparam_names: list[str] = field(default_factory=list)
    steps: int = 0
    wall_time_s: float = 0.0

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second of wall time, gradient steps included."""
        return self.steps / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, with NaN losses as ``None``."""
        result = asdict(self)
        result["losses"] = [None if math.isnan(x) else x for x in self.losses]
        result["steps_per_second"] = self.steps_per_second
        return result


class DQNAgent:
    """Branching DQN agent for a ``MultiDiscrete([3] * n_heads)`` action space."""

    def __init__(
        self, observation_dim: int, n_heads: int, config: DQNConfig | None = None
    ) -> None:
        if observation_dim < 1 or n_heads < 1:
            raise DQNError(
                f"observation_dim and n_heads must be >= 1, got {observation_dim} "
                f"and {n_heads}"
            )
        self.config = config or DQNConfig()
        self.observation_dim = observation_dim
        self.n_heads = n_heads
        self.device = self.config.resolved_device()

        # Seed the initial weights without touching the caller's global torch RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.q_network = self._build_network()
            self.target_network = self._build_network()
        self.target_network.load_state_dict(self.q_network.state_dict())
        self.optimizer = torch.optim.Adam(
            self.q_network.parameters(), lr=self.config.learning_rate
        )
        self.replay_buffer = ReplayBuffer(
            self.config.buffer_size, observation_dim, n_heads
        )
        self.rng = np.random.default_rng(self.config.seed)
        self.global_step = 0
        self.epsilon = self.config.start_e

    @classmethod
    def for_env(cls, env: gym.Env, config: DQNConfig | None = None) -> DQNAgent:
        """Size an agent for ``env``'s Box observation and MultiDiscrete actions."""
        observation_space = env.observation_space
        action_space = env.action_space
        if (
            not isinstance(observation_space, gym.spaces.Box)
            or len(observation_space.shape) != 1
        ):
            raise DQNError(
                f"the environment's observation space must be a 1-D Box, got "
                f"{observation_space}"
            )
        if not isinstance(action_space, gym.spaces.MultiDiscrete) or not np.all(
            action_space.nvec == N_ACTIONS
        ):
            raise DQNError(
                f"the environment's action space must be MultiDiscrete([3] * n), got "
                f"{action_space}"
            )
        return cls(observation_space.shape[0], len(action_space.nvec), config)

    def _build_network(self) -> BranchingQNetwork:
        return BranchingQNetwork(
            self.observation_dim,
            self.n_heads,
            self.config.hidden_sizes,
            dueling=self.config.dueling,
        ).to(self.device)

    # -- acting ----------------------------------------------------------------------

    def act(self, observation: np.ndarray, greedy: bool = True) -> np.ndarray:
        """Return an action, one entry in {0, 1, 2} per head.

        With ``greedy=False`` a uniformly random action is taken with probability
        ``self.epsilon``.
        """
        observation = np.asarray(observation, dtype=np.float32)
        if observation.shape != (self.observation_dim,):
            raise DQNError(
                f"observation must have shape ({self.observation_dim},), "
                f"got {observation.shape}"
            )
        if not greedy and self.rng.random() < self.epsilon:
            return self.rng.integers(0, N_ACTIONS, size=self.n_heads)
        with torch.no_grad():
            tensor = torch.from_numpy(observation).to(self.device)[None]
            q_values = self.q_network(tensor)
        return q_values.argmax(dim=2)[0].cpu().numpy()

    # -- learning --------------------------------------------------------------------

    def remember(
        self,
        observation: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
    ) -> None:
        """Store a transition; a truncated episode is not ``terminated``."""
        self.replay_buffer.add(
            observation, next_observation, action, reward, terminated
        )

    def after_step(self, train_frequency: int | None = None) -> float | None:
        """Advance the step counter and run the updates due at this step.

        Args:
            train_frequency: Steps per gradient step; ``config.train_frequency``
                when omitted.

        Returns:
            The TD loss when a gradient step ran, else ``None``.
        """
        self.global_step += 1
        loss = None
        config = self.config
        frequency = train_frequency or config.train_frequency
        if (
            self.global_step > config.learning_starts
            and self.global_step % frequency == 0
            and len(self.replay_buffer) >= config.batch_size
        ):
            loss = self.learn()
        if self.global_step % config.target_network_frequency == 0:
            self.update_target_network()
        return loss

    def learn(self) -> float:
        """Run one gradient step on a replay batch; return the TD loss."""
        config = self.config
        observations, actions, rewards, next_observations, dones = (
            self.replay_buffer.sample(config.batch_size, self.rng, self.device)
        )
        with torch.no_grad():
            next_q_target = self.target_network(next_observations)
            next_q_online = (
                self.q_network(next_observations) if config.double_q else None
            )
            td_target = branching_td_target(
                rewards, dones, next_q_target, config.gamma, next_q_online
            )
        old_val = self.q_network(observations).gather(2, actions[:, :, None]).squeeze(2)
        loss = F.smooth_l1_loss(old_val, td_target[:, None].expand_as(old_val))

        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_network.parameters(), config.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def update_target_network(self) -> None:
        """Blend the Q-network into the target network by ``tau`` (1.0 copies)."""
        tau = self.config.tau
        with torch.no_grad():
            for target, online in zip(
                self.target_network.parameters(),
                self.q_network.parameters(),
                strict=True,
            ):
                target.copy_(tau * online + (1.0 - tau) * target)

    def train(
        self, env: gym.Env, episodes: int | None = None, progress: bool = True
    ) -> TrainingHistory:
        """Train on ``env`` for ``episodes`` (``config.episodes`` when omitted).

        Epsilon falls linearly over the first ``exploration_fraction`` of all steps,
        counting ``episode_length`` steps per episode.
        """
        episodes = self.config.episodes if episodes is None else episodes
        if not isinstance(episodes, int) or episodes < 1:
            raise DQNError(f"episodes must be an integer >= 1, got {episodes!r}")
        episode_length = _episode_length(env)
        exploration_steps = self.config.exploration_fraction * episodes * episode_length
        first_step = self.global_step
        history = TrainingHistory()

        started = time.perf_counter()
        bar = tqdm(range(episodes), desc="DQN", unit="episode", disable=not progress)
        for episode in bar:
            observation, info = env.reset(
                seed=self.config.seed if episode == 0 else None
            )
            rewards: list[float] = []
            losses: list[float] = []
            done = False
            while not done:
                self.epsilon = linear_schedule(
                    self.config.start_e,
                    self.config.end_e,
                    exploration_steps,
                    self.global_step - first_step,
                )
                action = self.act(observation, greedy=False)
                next_observation, reward, terminated, truncated, info = env.step(action)
                rewards.append(float(reward))
                self.remember(
                    observation, action, rewards[-1], next_observation, terminated
                )
                observation = next_observation
                loss = self.after_step()
                if loss is not None:
                    losses.append(loss)
                done = terminated or truncated

            self._record_episode(history, rewards, losses, info)
            if progress and (episode % 10 == 0 or episode == episodes - 1):
                bar.set_postfix(
                    reward=f"{np.mean(history.episode_mean_rewards[-100:]):.3f}",
                    epsilon=f"{self.epsilon:.2f}",
                )
        history.steps = self.global_step - first_step
        history.wall_time_s = time.perf_counter() - started
        logger.info(
            "DQN trained %d episodes (%d steps) in %.1f s, %.0f steps/s; mean reward "
            "of the last 100 episodes %.4f",
            episodes,
            history.steps,
            history.wall_time_s,
            history.steps_per_second,
            float(np.mean(history.episode_mean_rewards[-100:])),
        )
        return history

    def greedy_hyperparams(
        self, env: gym.Env, seed: int | None = None
    ) -> HyperparamSet:
        """Run one greedy episode on ``env`` and return the hyperparameters it ends
        with: the agent's choice when a single set must be deployed.

        Raises:
            DQNError: when the environment's ``info`` carries no ``hyperparams``.
        """
        observation, info = env.reset(seed=seed)
        done = False
        while not done:
            action = self.act(observation, greedy=True)
            observation, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        values = info.get("hyperparams")
        if not isinstance(values, dict):
            raise DQNError(
                "the environment's info has no 'hyperparams' mapping, so there is "
                "no hyperparameter set to return"
            )
        return HyperparamSet(values)

    def _record_episode(
        self,
        history: TrainingHistory,
        rewards: list[float],
        losses: list[float],
        info: dict[str, Any],
    ) -> None:
        history.episode_returns.append(float(np.sum(rewards)))
        history.episode_mean_rewards.append(float(np.mean(rewards)))
        history.losses.append(float(np.mean(losses)) if losses else math.nan)
        history.epsilons.append(self.epsilon)
        values = info.get("hyperparams")
        if isinstance(values, dict):
            if not history.hyperparam_names:
                history.hyperparam_names = list(values)
            history.hyperparams.append(
                [float(values[n]) for n in history.hyperparam_names]
            )

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the networks, optimizer state and config to ``path``."""
        config = asdict(self.config)
        config["hidden_sizes"] = list(self.config.hidden_sizes)
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "config": config,
            "observation_dim": self.observation_dim,
            "n_heads": self.n_heads,
            "global_step": self.global_step,
            "epsilon": self.epsilon,
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> DQNAgent:
        """Read an agent written by :meth:`save`, onto ``device`` when given.

        The replay buffer is not saved, so online learning after a load starts
        from an empty buffer.
        """
        path = Path(path)
        if not path.is_file():
            raise DQNError(f"DQN checkpoint {path} not found")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several unrelated types here
            raise DQNError(f"DQN checkpoint {path} is unreadable: {error}") from error
        if (
            not isinstance(checkpoint, dict)
            or checkpoint.get("format") != CHECKPOINT_FORMAT
        ):
            raise DQNError(
                f"DQN checkpoint {path} has an unknown format; expected format "
                f"{CHECKPOINT_FORMAT} written by DQNAgent.save"
            )
        config_values = dict(checkpoint["config"])
        config_values["hidden_sizes"] = tuple(config_values["hidden_sizes"])
        if device is not None:
            config_values["device"] = device
        agent = cls(
            checkpoint["observation_dim"],
            checkpoint["n_heads"],
            DQNConfig(**config_values),
        )
        agent.q_network.load_state_dict(checkpoint["q_network"])
        agent.target_network.load_state_dict(checkpoint["target_network"])
        agent.optimizer.load_state_dict(checkpoint["optimizer"])
        agent.global_step = int(checkpoint["global_step"])
        agent.epsilon = float(checkpoint["epsilon"])
        return agent


def _episode_length(env: gym.Env) -> int:
    length = getattr(env.unwrapped, "episode_length", None)
    if length is None and env.spec is not None:
        length = env.spec.max_episode_steps
    if not isinstance(length, int) or length < 1:
        raise DQNError(
            "the environment must declare its episode length (an episode_length "
            "attribute or spec.max_episode_steps) so epsilon can decay over training"
        )
    return length
