"""The tuning state shared by the training environment and the deployed DQN tuner.

Both build the agent's observation with one :class:`StateTracker`, so a policy
trained in :class:`~adaptrec.tuning.env.HyperparamTuningEnv` gets the same features
when it runs against :meth:`UserSimulator.run_days
<adaptrec.evaluation.simulator.UserSimulator.run_days>`.

The observation is the concatenation, in this order, of:

1. user profile: the mean NVDM topic mean ``mu`` of the users about to be served
   (``n_topics`` values);
2. recent interaction history: the mean content embedding of the last
   ``history_length`` clicked items, projected onto the top ``history_dim``
   principal components of the catalogue's content embeddings (zeros before the
   first click);
3. content landscape of the current day: the catalogue topic distribution, a
   click-weighted mean of each item's softmax over its NVDM decoder weights
   (``n_topics`` values; add-one smoothing, so a day without clicks weighs items
   equally), and a popularity summary of the day's clicks: normalised entropy,
   share of the top 1% of items, and the fraction of items clicked at least once;
4. the current hyperparameter values, each scaled to ``[0, 1]`` by its bounds.

The landscape comes from clicks the tuner observed, never from the simulator's
internals, so the same features exist in production. A day, and an environment
episode, starts with an empty history and no clicks.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch

from adaptrec.hyperparams import HyperparamSet, HyperparamSpace

POPULARITY_FEATURES = ("click_entropy", "top_1pct_share", "coverage")


class StateError(ValueError):
    """The tuning state was configured with inconsistent inputs."""


class TunableRecommender(Protocol):
    """Recommender interface that the environment and the tuners call."""

    n_users: int
    n_items: int
    device: torch.device

    def score(
        self, users: torch.Tensor, hyperparams: Mapping[str, float]
    ) -> torch.Tensor: ...

    def recommend(
        self,
        users: torch.Tensor,
        hyperparams: Mapping[str, float],
        k: int,
        exclude_train: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def user_topics(
        self, users: torch.Tensor, beta: float
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def item_topics(self, beta: float) -> torch.Tensor: ...


def principal_components(content: np.ndarray, dim: int) -> np.ndarray:
    """Project ``content`` rows onto their top ``dim`` principal components.

    The signs are fixed so that each component's largest loading is positive, so
    the projection does not depend on the SVD implementation. With fewer than
    ``dim`` components available, the remaining columns are zero.
    """
    centred = content - content.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dim]
    signs = np.sign(
        components[np.arange(len(components)), np.abs(components).argmax(1)]
    )
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    projected = np.zeros((len(content), dim), dtype=np.float64)
    projected[:, : len(components)] = centred @ components.T
    return projected


class StateTracker:
    """Builds observations from served users, observed clicks and hyperparameters.

    Args:
        recommender: Supplies ``user_topics``, ``item_topics`` and the device.
        space: The tuned hyperparameters; ``beta`` selects the NVDM when the space
            declares it, else the NVDM of ``default_beta``.
        item_content: Content embedding per item, ``[n_items, d]``.
        history_length: Clicked items kept for the history vector.
        history_dim: Principal components kept of the content embeddings.
        default_beta: NVDM learning rate to use when ``beta`` is not tuned;
            ``recommender.config.default_beta`` when omitted and present.
    """

    def __init__(
        self,
        recommender: TunableRecommender,
        space: HyperparamSpace,
        item_content: Any,
        *,
        history_length: int = 50,
        history_dim: int = 16,
        default_beta: float | None = None,
    ) -> None:
        content = _to_numpy(item_content).astype(np.float64)
        if content.ndim != 2 or content.shape[0] != recommender.n_items:
            raise StateError(
                f"item_content must have shape [n_items={recommender.n_items}, d], "
                f"got {content.shape}"
            )
        if history_length < 1 or history_dim < 1:
            raise StateError(
                f"history_length and history_dim must be >= 1, got "
                f"{history_length} and {history_dim}"
            )
        if default_beta is None:
            model_config = getattr(recommender, "config", None)
            default_beta = getattr(model_config, "default_beta", None)
        if "beta" not in space.names and default_beta is None:
            raise StateError(
                "the space does not tune 'beta', so pass default_beta: the NVDM "
                "learning rate whose topics the state shows"
            )
        self.recommender = recommender
        self.space = space
        self.history_length = history_length
        self.history_dim = history_dim
        self.item_content = content
        self.default_beta = default_beta
        self._projected_content = principal_components(content, history_dim)
        self._lows = np.array([spec.min for spec in space], dtype=np.float64)
        self._spans = np.array(
            [spec.max - spec.min for spec in space], dtype=np.float64
        )
        self._item_topic_cache: dict[float, torch.Tensor] = {}
        self.n_topics = int(
            self._item_topic_distribution(self._beta(space.initial())).shape[1]
        )
        self.reset()

    @property
    def observation_dim(self) -> int:
        return (
            2 * self.n_topics
            + self.history_dim
            + len(POPULARITY_FEATURES)
            + len(self.space)
        )

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Return float32 ``(low, high)``: unbounded for the user profile and the
        history, ``[0, 1]`` for the landscape and the scaled hyperparameters."""
        unbounded = self.n_topics + self.history_dim
        low = np.zeros(self.observation_dim, dtype=np.float32)
        high = np.ones(self.observation_dim, dtype=np.float32)
        low[:unbounded] = -np.inf
        high[:unbounded] = np.inf
        return low, high

    def feature_names(self) -> list[str]:
        """Return one name per observation entry, in order."""
        return (
            [f"user_topic_{t}" for t in range(self.n_topics)]
            + [f"history_pc_{j}" for j in range(self.history_dim)]
            + [f"catalogue_topic_{t}" for t in range(self.n_topics)]
            + list(POPULARITY_FEATURES)
            + [f"hyperparam_{name}" for name in self.space.names]
        )

    def reset(self) -> None:
        """Forget the clicked-item history and the day's clicks."""
        self._history: deque[int] = deque(maxlen=self.history_length)
        self._clicks_today = np.zeros(self.recommender.n_items, dtype=np.float64)

    def record(self, items: Any, positions: Any) -> None:
        """Record the clicked item of each slate (``positions`` -1 means no click)."""
        items = _to_numpy(items)
        positions = _to_numpy(positions).astype(np.int64)
        clicked = positions >= 0
        clicked_items = items[np.flatnonzero(clicked), positions[clicked]]
        self._history.extend(int(item) for item in clicked_items)
        np.add.at(self._clicks_today, clicked_items, 1.0)

    def observation(
        self, users: torch.Tensor, hyperparams: HyperparamSet
    ) -> np.ndarray:
        """Return the float32 observation of serving ``users`` with ``hyperparams``."""
        beta = self._beta(hyperparams)
        with torch.no_grad():
            mu, _ = self.recommender.user_topics(users, beta)
            profile = mu.float().mean(dim=0).cpu().numpy()
            weights = torch.as_tensor(
                1.0 + self._clicks_today,
                dtype=torch.float32,
                device=self.recommender.device,
            )
            distribution = self._item_topic_distribution(beta)
            landscape = (weights @ distribution / weights.sum()).cpu().numpy()

        if self._history:
            history = self._projected_content[list(self._history)].mean(axis=0)
        else:
            history = np.zeros(self.history_dim)
        scaled = (
            np.array([hyperparams[n] for n in self.space.names]) - self._lows
        ) / self._spans
        return np.concatenate(
            [profile, history, landscape, self._popularity_summary(), scaled]
        ).astype(np.float32)

    def _beta(self, hyperparams: Mapping[str, float]) -> float:
        if "beta" in hyperparams:
            return float(hyperparams["beta"])
        assert self.default_beta is not None
        return float(self.default_beta)

    def _item_topic_distribution(self, beta: float) -> torch.Tensor:
        if beta not in self._item_topic_cache:
            with torch.no_grad():
                weights = self.recommender.item_topics(beta).float()
            if weights.ndim != 2 or weights.shape[0] != self.recommender.n_items:
                raise StateError(
                    f"item_topics(beta={beta}) returned shape {tuple(weights.shape)}; "
                    f"expected [n_items={self.recommender.n_items}, n_topics]"
                )
            self._item_topic_cache[beta] = torch.softmax(weights, dim=1)
        return self._item_topic_cache[beta]

    def _popularity_summary(self) -> np.ndarray:
        counts = self._clicks_today
        total = counts.sum()
        if total == 0:
            return np.zeros(len(POPULARITY_FEATURES))
        shares = counts[counts > 0] / total
        entropy = float(-(shares * np.log(shares)).sum() / math.log(len(counts)))
        top = max(1, int(math.ceil(0.01 * len(counts))))
        top_share = float(np.sort(counts)[-top:].sum() / total)
        coverage = float((counts > 0).mean())
        return np.array([entropy, top_share, coverage])


def _to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
