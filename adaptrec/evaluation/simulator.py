"""Simulated users who click on recommended slates, with preference drift over days.

Every tuner is scored by the same :class:`UserSimulator`. The pipeline fits one on
the training fold's ratings for tuning and one on all ratings for scoring, so no
tuner learns from test data.

Preference model. A biased matrix factorisation of the explicit ratings, fitted by
alternating least squares with weighted-lambda regularisation (ALS-WR, Zhou et al.
2008), predicts ``r_hat(u, i) = mu + b_u + b_i + p_u . q_i``. It is fitted on every
rating it is given, including ratings below the positive threshold. It belongs to a
different model family than the hybrid recommender under test (EASE item-item,
content cosine, NVDM topics, Node2Vec KG), so it does not reward the recommender for
agreeing with itself.

Calibrated link. ``P(attractive | u, i) = sigmoid(a * r_hat + b)``. Logistic
regression fits ``a`` and ``b`` on observed ratings at or above the positive
threshold (label 1) against observed lower ratings and uniformly sampled unobserved
user-item pairs (label 0). Each sampled unobserved pair is weighted so that the
samples stand for every unobserved pair of the matrix, so the probability reads as
"this user would rate this item at or above the threshold".

Position bias. A cascade model: the user scans the slate top-down, examines
position ``p`` (1-based) with probability ``(1 / p) ** eta``, clicks the first
examined attractive item and stops. A slate therefore yields one click or none.
MovieLens records no slate positions, so ``eta`` cannot be fitted from it and is set
by configuration (default 1).

Drift. Day 0 is the fitted state. On day ``d`` each user's latent vector is
``p_u + min(1, drift_per_day * d) * (t_u - p_u)``, where the drift target ``t_u``
is either another user's vector (a seeded permutation) or the mean item vector of a
genre the user rarely rated, scaled to the user's vector norm. A seeded subset of
"trending" items gains ``popularity_gain_per_day`` rating points of bias per day.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from adaptrec.data.dataset import Dataset

logger = logging.getLogger(__name__)

DRIFT_TARGETS = ("user", "genre")


class SimulatorError(ValueError):
    """The simulator was configured or called with invalid input."""


@dataclass(frozen=True)
class SimulatorConfig:
    """Settings of the user simulator.

    Attributes:
        factors: Latent dimension of the matrix factorisation.
        iterations: ALS sweeps (one user solve and one item solve each).
        regularization: ALS-WR lambda; each row's L2 penalty is lambda times its
            number of ratings.
        unobserved_per_rating: Unobserved user-item pairs sampled per observed
            rating as negatives for the logistic link.
        eta: Position-bias exponent of the cascade's examination probability.
        drift_per_day: Fraction of the way from the fitted user vector to the drift
            target covered per simulated day; capped at 1.
        drift_target: ``"user"`` (another user's vector) or ``"genre"`` (a genre the
            user rarely rated).
        min_genre_items: Genres with fewer items are never a drift target.
        trending_fraction: Fraction of items that gain popularity over the days.
        popularity_gain_per_day: Rating points added per day to a trending item's
            bias.
    """

    factors: int = 32
    iterations: int = 10
    regularization: float = 0.1
    unobserved_per_rating: float = 2.0
    eta: float = 1.0
    drift_per_day: float = 0.1
    drift_target: str = "user"
    min_genre_items: int = 10
    trending_fraction: float = 0.02
    popularity_gain_per_day: float = 0.1

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("factors", self.factors >= 1, "an integer >= 1"),
            ("iterations", self.iterations >= 1, "an integer >= 1"),
            ("regularization", self.regularization > 0, "a positive number"),
            ("unobserved_per_rating", self.unobserved_per_rating > 0, "positive"),
            ("eta", self.eta >= 0, "a number >= 0"),
            ("drift_per_day", self.drift_per_day >= 0, "a number >= 0"),
            ("drift_target", self.drift_target in DRIFT_TARGETS, str(DRIFT_TARGETS)),
            ("min_genre_items", self.min_genre_items >= 1, "an integer >= 1"),
            ("trending_fraction", 0 <= self.trending_fraction <= 1, "in [0, 1]"),
            ("popularity_gain_per_day", self.popularity_gain_per_day >= 0, ">= 0"),
        ]
        for name, valid, expected in checks:
            if not valid:
                raise SimulatorError(
                    f"simulator setting {name}={getattr(self, name)!r} is invalid; "
                    f"expected {expected}"
                )


@dataclass
class SimulationResult:
    """Click-through per simulated day from :meth:`UserSimulator.run_days`."""

    days: list[int] = field(default_factory=list)
    served: list[int] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)

    @property
    def ctr(self) -> list[float]:
        """Clicks over served slates, per day."""
        return [
            c / s if s else 0.0 for c, s in zip(self.clicks, self.served, strict=True)
        ]

    @property
    def mean_ctr(self) -> float:
        """Clicks over served slates, all days together."""
        served = sum(self.served)
        return sum(self.clicks) / served if served else 0.0


Policy = Callable[[int, np.ndarray], Any]
Feedback = Callable[[np.ndarray, np.ndarray], None]


class UserSimulator:
    """Users whose clicks follow a calibrated cascade model over a drifting MF.

    Call :meth:`fit` before any other method.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._fitted = False

    # -- fitting -----------------------------------------------------------------

    def fit(
        self,
        dataset: Dataset,
        ratings: pd.DataFrame | None = None,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> UserSimulator:
        """Fit the preference model, the click link and the drift schedule.

        Args:
            dataset: Supplies the user and item counts, item genres and the
                positive threshold.
            ratings: The ratings to fit on (columns ``user``, ``item``, ``rating``);
                ``dataset.ratings`` when omitted. Pass a training fold's ratings
                (see :func:`drop_held_out`) to keep test data out of tuning.
            seed: Seeds the factor initialisation, negative sampling and drift.
            device: Torch device for the ALS solves; CUDA when available.

        Returns:
            ``self``.
        """
        ratings = dataset.ratings if ratings is None else ratings
        users, items, values = _checked_ratings(ratings, dataset)
        device = torch.device(
            device or ("cuda" if torch.cuda.is_available() else "cpu")
        )
        rng = np.random.default_rng(seed)
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self.positive_threshold = float(dataset.positive_threshold)

        # Preference model: biased MF of the explicit ratings.
        factors = _fit_biased_mf(
            users, items, values, self.n_users, self.n_items, self.config, seed, device
        )
        self.global_mean, self.user_bias, self.item_bias, self.P, self.Q = factors
        residual = values - self._fitted_ratings(users, items)
        self.train_rmse = float(np.sqrt(np.mean(residual**2)))

        # Calibrated link: weighted logistic regression on r_hat.
        self.link_a, self.link_b, self.calibration = self._fit_link(
            users, items, values, rng
        )

        # Drift schedule: per-user targets and trending items.
        self.drift_targets = self._drift_targets(dataset, users, items, rng)
        n_trending = int(round(self.config.trending_fraction * self.n_items))
        self.trending_items = np.sort(
            rng.choice(self.n_items, size=n_trending, replace=False)
        )
        self._trending_mask = np.zeros(self.n_items, dtype=bool)
        self._trending_mask[self.trending_items] = True

        self.n_ratings = int(len(values))
        self._fitted = True
        logger.info(
            "user simulator fitted on %d ratings: train RMSE %.3f, link a=%.3f b=%.3f",
            self.n_ratings,
            self.train_rmse,
            self.link_a,
            self.link_b,
        )
        return self

    def _fit_link(
        self,
        users: np.ndarray,
        items: np.ndarray,
        values: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[float, float, dict[str, float]]:
        n_observed = len(values)
        n_samples = max(1, int(round(self.config.unobserved_per_rating * n_observed)))
        sampled_users, sampled_items = _sample_unobserved(
            users, items, self.n_users, self.n_items, n_samples, rng
        )
        n_unobserved = self.n_users * self.n_items - len(
            np.unique(users.astype(np.int64) * self.n_items + items)
        )
        unobserved_weight = n_unobserved / len(sampled_users)

        predicted = np.concatenate(
            [
                self._fitted_ratings(users, items),
                self._fitted_ratings(sampled_users, sampled_items),
            ]
        )
        labels = np.concatenate(
            [
                (values >= self.positive_threshold).astype(np.float64),
                np.zeros(len(sampled_users)),
            ]
        )
        weights = np.concatenate(
            [np.ones(n_observed), np.full(len(sampled_users), unobserved_weight)]
        )
        a, b = _weighted_logistic_regression(predicted, labels, weights)
        calibration = {
            "positives": int(labels[:n_observed].sum()),
            "observed_negatives": int(n_observed - labels[:n_observed].sum()),
            "sampled_unobserved": int(len(sampled_users)),
            "unobserved_weight": float(unobserved_weight),
            "base_rate": float(np.sum(labels * weights) / np.sum(weights)),
        }
        return a, b, calibration

    def _drift_targets(
        self,
        dataset: Dataset,
        users: np.ndarray,
        items: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        if self.config.drift_target == "user":
            return self.P[_derangement(self.n_users, rng)]
        return self._genre_targets(dataset, users, items, rng)

    def _genre_targets(
        self,
        dataset: Dataset,
        users: np.ndarray,
        items: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        genres = dataset.items.get("genres") if dataset.items is not None else None
        if genres is None or len(genres) != self.n_items:
            raise SimulatorError(
                "drift_target='genre' needs dataset.items['genres'] for every item; "
                "use drift_target='user' for a dataset without genres"
            )
        names = sorted({g for item_genres in genres for g in (item_genres or [])})
        membership = np.zeros((self.n_items, len(names)), dtype=np.float64)
        column = {name: j for j, name in enumerate(names)}
        for i, item_genres in enumerate(genres):
            for genre in item_genres or []:
                membership[i, column[genre]] = 1.0
        eligible = membership.sum(axis=0) >= self.config.min_genre_items
        if not eligible.any():
            raise SimulatorError(
                f"no genre has min_genre_items={self.config.min_genre_items} items; "
                "lower min_genre_items or use drift_target='user'"
            )

        # The rarest genre per user, among eligible ones, ties broken at random.
        rated = sp.csr_matrix(
            (np.ones(len(users)), (users, items)), shape=(self.n_users, self.n_items)
        )
        counts = np.asarray(rated @ membership)
        counts[:, ~eligible] = np.inf
        jitter = rng.random(counts.shape) * 0.5
        rarest = np.argmin(counts + jitter, axis=1)

        genre_means = (membership.T @ self.Q) / np.maximum(membership.sum(axis=0), 1.0)[
            :, None
        ]
        targets = genre_means[rarest]
        user_norms = np.linalg.norm(self.P, axis=1, keepdims=True)
        target_norms = np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
        return targets * (user_norms / target_norms)

    # -- preferences ---------------------------------------------------------------

    def drift_fraction(self, day: float) -> float:
        """Return how far user vectors have moved toward their targets on ``day``."""
        return min(1.0, self.config.drift_per_day * _checked_day(day))

    def user_vectors(self, users: Any, day: float = 0) -> np.ndarray:
        """Return the latent preference vectors of ``users`` on ``day``."""
        self._require_fitted()
        users = self._checked_users(users)
        fraction = self.drift_fraction(day)
        fitted = self.P[users]
        return fitted + fraction * (self.drift_targets[users] - fitted)

    def predicted_ratings(self, users: Any, items: Any, day: float = 0) -> np.ndarray:
        """Return ``r_hat`` for each slate entry, shape ``[B, k]``."""
        self._require_fitted()
        users, items = self._checked_slates(users, items)
        return self._predict_slates(users, items, day)

    def attractiveness(self, users: Any, items: Any, day: float = 0) -> np.ndarray:
        """Return ``P(attractive | u, i)`` on ``day`` for each slate entry."""
        self._require_fitted()
        users, items = self._checked_slates(users, items)
        return _sigmoid(
            self.link_a * self._predict_slates(users, items, day) + self.link_b
        )

    def click_probabilities(self, users: Any, items: Any, day: float = 0) -> np.ndarray:
        """Return the probability of the slate's click at each position, ``[B, k]``.

        Under the cascade model the entries of a row sum to the probability that
        the slate is clicked at all.
        """
        attractive = self.attractiveness(users, items, day)
        hit = self._examination(attractive.shape[1]) * attractive
        survive = np.cumprod(1.0 - hit, axis=1)
        before = np.concatenate([np.ones((len(hit), 1)), survive[:, :-1]], axis=1)
        return hit * before

    def simulate(
        self, users: Any, items: Any, day: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample one cascade per slate.

        Args:
            users: User indices, shape ``[B]`` (numpy array, list or tensor).
            items: Item indices, shape ``[B, k]``, best first.
            day: Simulated day (>= 0).
            rng: Source of the random draws; the same seed gives the same clicks.

        Returns:
            ``(clicks, positions)``: ``clicks[b]`` is 1 when slate ``b`` was clicked,
            else 0, and ``positions[b]`` is the clicked 0-based position, or -1.
        """
        attractive = self.attractiveness(users, items, day)
        examined = rng.random(attractive.shape) < self._examination(attractive.shape[1])
        hit = examined & (rng.random(attractive.shape) < attractive)
        clicks = np.asarray(hit.any(axis=1), dtype=np.int64)
        positions = np.where(clicks == 1, hit.argmax(axis=1), -1).astype(np.int64)
        return clicks, positions

    def run_days(
        self,
        policy: Policy,
        users_per_day: int,
        days: int = 7,
        seed: int = 0,
        *,
        batch_size: int = 64,
        start_day: int = 0,
        feedback: Feedback | None = None,
    ) -> SimulationResult:
        """Serve ``users_per_day`` sampled users on each of ``days`` days.

        Each day's users are drawn uniformly with replacement and served in batches
        of ``batch_size``: ``policy(day, users)`` returns a ``[B, k]`` slate and
        ``feedback(clicks, positions)``, when given, receives that batch's outcome
        before the next batch, so an online learner can adapt. The users and the
        random draws behind the clicks depend only on ``seed``, the day and the
        batch number, so every policy meets the same users and the same draws.

        Returns:
            Served slates and clicks per day; ``.ctr`` is click-through per day.
        """
        self._require_fitted()
        for name, value in (("users_per_day", users_per_day), ("days", days)):
            if int(value) != value or value < 1:
                raise SimulatorError(f"{name} must be an integer >= 1, got {value!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise SimulatorError(
                f"batch_size must be an integer >= 1, got {batch_size!r}"
            )
        _checked_day(start_day)

        result = SimulationResult()
        for day in range(start_day, start_day + days):
            user_rng = np.random.default_rng([seed, day, 0])
            day_users = user_rng.integers(0, self.n_users, size=users_per_day)
            clicks_today = 0
            for batch, begin in enumerate(range(0, users_per_day, batch_size)):
                users = day_users[begin : begin + batch_size]
                items = _to_numpy(policy(day, users))
                click_rng = np.random.default_rng([seed, day, 1, batch])
                clicks, positions = self.simulate(users, items, day, click_rng)
                clicks_today += int(clicks.sum())
                if feedback is not None:
                    feedback(clicks, positions)
            result.days.append(day)
            result.served.append(int(users_per_day))
            result.clicks.append(clicks_today)
            logger.info(
                "simulated day %d: %d clicks over %d slates (CTR %.4f)",
                day,
                clicks_today,
                users_per_day,
                clicks_today / users_per_day,
            )
        return result

    def describe(self) -> dict[str, Any]:
        """Return the fitted model and settings as a JSON-ready dict for reports."""
        self._require_fitted()
        return {
            "preference_model": "biased matrix factorisation, ALS-WR on explicit "
            "ratings",
            "n_ratings": self.n_ratings,
            "train_rmse": self.train_rmse,
            "global_mean": self.global_mean,
            "link": {
                "formula": "P(attractive) = sigmoid(a * r_hat + b)",
                "a": self.link_a,
                "b": self.link_b,
                **self.calibration,
            },
            "position_bias": {
                "model": "cascade, examine position p with probability (1/p)^eta",
                "eta": self.config.eta,
                "source": "configured; MovieLens records no slate positions to fit "
                "eta from",
            },
            "drift": {
                "target": self.config.drift_target,
                "drift_per_day": self.config.drift_per_day,
                "trending_items": int(len(self.trending_items)),
                "popularity_gain_per_day": self.config.popularity_gain_per_day,
            },
            "config": asdict(self.config),
        }

    # -- internals -----------------------------------------------------------------

    def _fitted_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Return day-0 ``r_hat`` for (user, item) pairs, without input checks."""
        dot = np.sum(self.P[users] * self.Q[items], axis=1)
        return self.global_mean + self.user_bias[users] + self.item_bias[items] + dot

    def _predict_slates(
        self, users: np.ndarray, items: np.ndarray, day: float
    ) -> np.ndarray:
        vectors = self.user_vectors(users, day)
        dot = np.einsum("bf,bkf->bk", vectors, self.Q[items])
        bias = self.global_mean + self.user_bias[users][:, None] + self.item_bias[items]
        trend = self._trending_mask[items] * (
            self.config.popularity_gain_per_day * _checked_day(day)
        )
        return bias + dot + trend

    def _examination(self, k: int) -> np.ndarray:
        return (1.0 / np.arange(1, k + 1, dtype=np.float64)) ** self.config.eta

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise SimulatorError("the user simulator is not fitted; call fit() first")

    def _checked_users(self, users: Any) -> np.ndarray:
        users = _to_numpy(users)
        if users.ndim != 1:
            raise SimulatorError(f"users must be 1-D, got shape {users.shape}")
        _check_indices("user", users, self.n_users)
        return users.astype(np.int64, copy=False)

    def _checked_slates(self, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray]:
        users = self._checked_users(users)
        items = _to_numpy(items)
        if items.ndim != 2 or items.shape[0] != users.shape[0]:
            raise SimulatorError(
                f"items must have shape [B, k] with B = len(users) = {len(users)}, "
                f"got {items.shape}"
            )
        _check_indices("item", items, self.n_items)
        return users, items.astype(np.int64, copy=False)


def drop_held_out(ratings: pd.DataFrame, held_out: sp.spmatrix) -> pd.DataFrame:
    """Return ``ratings`` without the (user, item) pairs stored in ``held_out``.

    Use it to fit a tuning simulator on a training fold: ``drop_held_out(
    dataset.ratings, fold.test)`` keeps every rating except the fold's test
    positives.
    """
    held = sp.coo_matrix(held_out)
    n_items = held.shape[1]
    held_keys = held.row.astype(np.int64) * n_items + held.col
    keys = ratings["user"].to_numpy(np.int64) * n_items + ratings["item"].to_numpy(
        np.int64
    )
    return ratings[~np.isin(keys, held_keys)]


# -- module helpers --------------------------------------------------------------


def _fit_biased_mf(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    n_users: int,
    n_items: int,
    config: SimulatorConfig,
    seed: int,
    device: torch.device,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``r ~ mu + b_u + b_i + p_u . q_i`` by ALS-WR; return numpy factors."""
    generator = torch.Generator().manual_seed(seed)
    f = config.factors
    dtype = torch.float64
    u = torch.as_tensor(users, dtype=torch.long, device=device)
    i = torch.as_tensor(items, dtype=torch.long, device=device)
    r = torch.as_tensor(values, dtype=dtype, device=device)
    by_user = _RowPattern(u, i, n_users, n_items)
    by_item = _RowPattern(i, u, n_items, n_users)
    mu = r.mean()
    P = (0.1 * torch.randn(n_users, f, generator=generator, dtype=dtype)).to(device)
    Q = (0.1 * torch.randn(n_items, f, generator=generator, dtype=dtype)).to(device)
    user_bias = torch.zeros(n_users, dtype=dtype, device=device)
    item_bias = torch.zeros(n_items, dtype=dtype, device=device)
    ones_items = torch.ones(n_items, 1, dtype=dtype, device=device)
    ones_users = torch.ones(n_users, 1, dtype=dtype, device=device)

    for _ in range(config.iterations):
        # Solve [p_u, b_u] with the items fixed, then [q_i, b_i] with the users fixed.
        design = torch.cat([Q, ones_items], dim=1)
        solution = _solve_rows(
            by_user, r - mu - item_bias[i], design, config.regularization
        )
        P, user_bias = solution[:, :f], solution[:, f]
        design = torch.cat([P, ones_users], dim=1)
        solution = _solve_rows(
            by_item, r - mu - user_bias[u], design, config.regularization
        )
        Q, item_bias = solution[:, :f], solution[:, f]

    return (
        float(mu),
        user_bias.cpu().numpy(),
        item_bias.cpu().numpy(),
        P.cpu().numpy(),
        Q.cpu().numpy(),
    )


class _RowPattern:
    """Sorted (row, column) pairs, reused by every ALS sweep as a sparse matrix."""

    def __init__(
        self, rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int
    ):
        self.order = torch.argsort(rows * n_cols + cols)
        self.indices = torch.stack([rows[self.order], cols[self.order]])
        self.counts = torch.bincount(rows, minlength=n_rows)
        self.shape = (n_rows, n_cols)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        # The pairs are sorted and unique, which is what coalesced means.
        return torch.sparse_coo_tensor(
            self.indices,
            values[self.order],
            self.shape,
            is_coalesced=True,
            check_invariants=False,
        )


def _solve_rows(
    pattern: _RowPattern,
    target: torch.Tensor,
    design: torch.Tensor,
    regularization: float,
) -> torch.Tensor:
    """Solve one ridge regression per row, batched over all rows.

    Row ``r`` regresses ``target`` on ``design[c]`` over its pairs ``(r, c)``. The
    normal equations come from two sparse products, so no per-rating outer product
    is ever materialised.
    """
    n_cols, d = design.shape
    n_rows = pattern.shape[0]
    outer = (design[:, :, None] * design[:, None, :]).reshape(n_cols, d * d)
    gram = (pattern.matrix(torch.ones_like(target)) @ outer).reshape(n_rows, d, d)
    moment = pattern.matrix(target) @ design
    counts = pattern.counts.clamp(min=1).to(design.dtype)
    eye = torch.eye(d, dtype=design.dtype, device=design.device)
    gram += regularization * counts[:, None, None] * eye
    return torch.linalg.solve(gram, moment)


def _weighted_logistic_regression(
    x: np.ndarray, labels: np.ndarray, weights: np.ndarray, iterations: int = 50
) -> tuple[float, float]:
    """Fit ``P(label=1) = sigmoid(a * x + b)`` by Newton's method on weighted loss."""
    design = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.zeros(2)
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        gradient = design.T @ (weights * (p - labels))
        curvature = design.T @ (design * (weights * p * (1 - p))[:, None])
        curvature += 1e-9 * np.eye(2)
        update = np.linalg.solve(curvature, gradient)
        theta -= update
        if np.max(np.abs(update)) < 1e-10:
            break
    if not np.all(np.isfinite(theta)):
        raise SimulatorError(
            "the click link did not converge (a or b is not finite); the ratings "
            "may hold only one class around the positive threshold"
        )
    return float(theta[0]), float(theta[1])


def _sample_unobserved(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_samples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    observed = np.unique(users.astype(np.int64) * n_items + items)
    if len(observed) >= n_users * n_items:
        raise SimulatorError(
            "every user-item pair is rated, so there are no unobserved negatives"
        )
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_samples:
        draw = rng.integers(0, n_users * n_items, size=2 * (n_samples - len(keys)) + 16)
        keys = np.concatenate([keys, draw[~np.isin(draw, observed)]])
    keys = keys[:n_samples]
    return keys // n_items, keys % n_items


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """Return a seeded permutation with no fixed point (identity when n == 1)."""
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    # A random cyclic shift of a random order never maps an index to itself.
    order = rng.permutation(n)
    shift = int(rng.integers(1, n))
    result = np.empty(n, dtype=np.int64)
    result[order] = order[(np.arange(n) + shift) % n]
    return result


def _checked_ratings(
    ratings: pd.DataFrame, dataset: Dataset
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in ("user", "item", "rating") if c not in ratings.columns]
    if missing:
        raise SimulatorError(
            f"ratings are missing columns {missing}; expected user, item, rating"
        )
    if len(ratings) == 0:
        raise SimulatorError("ratings are empty; the simulator needs ratings to fit")
    users = ratings["user"].to_numpy(np.int64)
    items = ratings["item"].to_numpy(np.int64)
    values = ratings["rating"].to_numpy(np.float64)
    _check_indices("user", users, dataset.n_users)
    _check_indices("item", items, dataset.n_items)
    if not np.all(np.isfinite(values)):
        raise SimulatorError("ratings contain NaN or infinite values; drop them first")
    keys = users * dataset.n_items + items
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    if len(unique_keys) < len(keys):
        logger.warning(
            "ratings hold %d repeated (user, item) pairs; fitting on their mean rating",
            len(keys) - len(unique_keys),
        )
        sums = np.bincount(inverse, weights=values)
        values = sums / np.bincount(inverse)
        users, items = unique_keys // dataset.n_items, unique_keys % dataset.n_items
    return users, items, values


def _check_indices(kind: str, indices: np.ndarray, size: int) -> None:
    if indices.size == 0:
        return
    if not np.issubdtype(indices.dtype, np.integer):
        raise SimulatorError(
            f"{kind} indices must be integers, got dtype {indices.dtype}"
        )
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        raise SimulatorError(
            f"{kind} index {bad} is out of range; expected 0..{size - 1} "
            f"(indices of the dataset the simulator was fitted on)"
        )


def _checked_day(day: float) -> float:
    if not isinstance(day, int | float | np.integer | np.floating) or not (
        math.isfinite(day) and day >= 0
    ):
        raise SimulatorError(f"day must be a finite number >= 0, got {day!r}")
    return float(day)


def _to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, Sequence | np.ndarray):
        return np.asarray(values)
    raise SimulatorError(
        f"expected an array, list or tensor of indices, got {type(values).__name__}"
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))
