"""Baseline tuners through Optuna: grid search, Gaussian-process Bayesian
optimisation, TPE and random search.

Both maximise an objective over the declared hyperparameter space within an
evaluation budget. The pipeline's objective is NDCG@10 on a validation split carved
from the training fold (:func:`ndcg_objective`), so neither tuner reads a test fold.

- Grid search (:func:`grid_search`, Optuna's ``GridSampler``) evaluates the product
  of per-dimension grids from :func:`build_grid`: each dimension's step grid is
  subsampled evenly so that the product fits the budget.
- Bayesian optimisation (:func:`gp_search`, Optuna's seeded ``GPSampler``) runs
  ``budget`` trials and suggests every value on its declared step grid.
- TPE (:func:`tpe_search`, Optuna's seeded ``TPESampler``) and random search
  (:func:`random_search`, ``RandomSampler``) run ``budget`` trials on the same step
  grids, as further baselines at the same budget.

Optuna's per-trial log lines are silenced for the duration of a search in favour of
a progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import optuna
import scipy.sparse as sp
import torch

from adaptrec.evaluation.metrics import evaluate_scores
from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.tuning.state import TunableRecommender

logger = logging.getLogger(__name__)

Objective = Callable[[HyperparamSet], float]
Method = Literal["grid", "gp", "tpe", "random"]


class SearchError(ValueError):
    """A search was configured with invalid input or its objective failed."""


@dataclass
class TrialRecord:
    """One evaluated hyperparameter set."""

    number: int
    values: dict[str, float]
    value: float


@dataclass
class SearchResult:
    """Outcome of one search.

    Attributes:
        method: ``"grid"``, ``"gp"``, ``"tpe"`` or ``"random"``.
        best: The set with the highest objective value.
        best_value: Its objective value.
        trials: Every evaluation, in order.
        budget: The evaluation budget that was granted.
        evaluations: Evaluations used (at most ``budget``).
        wall_time_s: Seconds the search took, objective included.
        grid: Values per hyperparameter (grid search only).
        grid_size: Number of grid points (grid search only).
    """

    method: Method
    best: HyperparamSet
    best_value: float
    trials: list[TrialRecord]
    budget: int
    evaluations: int
    wall_time_s: float
    grid: dict[str, list[float]] | None = None
    grid_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trial_values(self) -> list[float]:
        """Objective value of each trial, in order."""
        return [trial.value for trial in self.trials]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for reports."""
        return {
            "method": self.method,
            "best": self.best.to_json_dict(),
            "best_value": self.best_value,
            "budget": self.budget,
            "evaluations": self.evaluations,
            "wall_time_s": self.wall_time_s,
            "grid": self.grid,
            "grid_size": self.grid_size,
            "trials": [
                {"number": t.number, "values": t.values, "value": t.value}
                for t in self.trials
            ],
            **self.extra,
        }


def build_grid(space: HyperparamSpace, budget: int) -> dict[str, list[float]]:
    """Subsample each hyperparameter's step grid so the product fits ``budget``.

    Every dimension starts at one point, its initial value. Points are then added
    one dimension at a time, always to the dimension with the fewest points so far
    (ties go to the larger full grid, then to declaration order), while the product
    stays within ``budget``. A dimension with ``m`` points takes ``m`` evenly spaced
    entries of its full grid, both ends included once ``m >= 2``.
    """
    _check_budget(budget)
    full = {spec.name: spec.grid() for spec in space}
    counts = {name: 1 for name in full}
    while True:
        candidates = [
            name
            for name in full
            if counts[name] < len(full[name])
            and math.prod(counts.values()) // counts[name] * (counts[name] + 1)
            <= budget
        ]
        if not candidates:
            break
        order = list(full)
        chosen = min(
            candidates, key=lambda n: (counts[n], -len(full[n]), order.index(n))
        )
        counts[chosen] += 1

    grid = {}
    for spec in space:
        values = full[spec.name]
        if counts[spec.name] == 1:
            grid[spec.name] = [spec.snap(spec.initial)]
        else:
            picks = np.linspace(0, len(values) - 1, counts[spec.name])
            grid[spec.name] = [values[int(round(p))] for p in picks]
    return grid


def grid_search(
    objective: Objective,
    space: HyperparamSpace,
    budget: int,
    *,
    seed: int = 0,
    progress: bool = True,
) -> SearchResult:
    """Evaluate every point of :func:`build_grid`'s grid and return the best."""
    grid = build_grid(space, budget)
    grid_size = grid_points(grid)
    logger.info(
        "grid search: %d points within a budget of %d: %s", grid_size, budget, grid
    )
    sampler = optuna.samplers.GridSampler(grid, seed=seed)
    result = _run_study("grid", sampler, objective, space, budget, grid_size, progress)
    result.grid = grid
    result.grid_size = grid_size
    return result


def gp_search(
    objective: Objective,
    space: HyperparamSpace,
    budget: int,
    *,
    seed: int = 0,
    n_startup_trials: int = 10,
    progress: bool = True,
) -> SearchResult:
    """Run ``budget`` trials of Gaussian-process Bayesian optimisation.

    The first ``min(n_startup_trials, budget)`` trials are drawn at random, the
    rest maximise the GP's acquisition function (Optuna's ``GPSampler``).
    """
    _check_budget(budget)
    sampler = optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=min(n_startup_trials, budget)
    )
    result = _run_study("gp", sampler, objective, space, budget, budget, progress)
    result.extra["n_startup_trials"] = min(n_startup_trials, budget)
    return result


def ndcg_objective(
    recommender: TunableRecommender,
    fit: sp.spmatrix,
    validation: sp.spmatrix,
    k: int = 10,
) -> Objective:
    """Return an objective that scores NDCG@``k`` of ``validation`` items.

    ``fit`` contains the interactions the recommender was trained on, and those items
    are never recommended. Build ``fit`` and ``validation`` with
    ``adaptrec.data.validation_split(fold.train)``, so the fold's test items stay
    unseen.
    """

    def objective(hyperparams: HyperparamSet) -> float:
        def score(users: torch.Tensor) -> torch.Tensor:
            return recommender.score(users.to(recommender.device), hyperparams)

        metrics = evaluate_scores(
            score, fit, validation, k=k, device=recommender.device
        )
        return float(metrics["ndcg"])

    return objective


def _run_study(
    method: Method,
    sampler: optuna.samplers.BaseSampler,
    objective: Objective,
    space: HyperparamSpace,
    budget: int,
    n_trials: int,
    progress: bool,
) -> SearchResult:
    trials: list[TrialRecord] = []

    def optuna_objective(trial: optuna.Trial) -> float:
        values = {
            spec.name: trial.suggest_float(
                spec.name, spec.min, spec.max, step=spec.step
            )
            for spec in space
        }
        hyperparams = space.validate(values)
        value = float(objective(hyperparams))
        if not math.isfinite(value):
            raise SearchError(
                f"the objective returned {value} for {hyperparams.values_dict}; "
                "it must return a finite number"
            )
        trials.append(TrialRecord(trial.number, hyperparams.values_dict, value))
        return value

    started = time.perf_counter()
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(
            optuna_objective,
            n_trials=n_trials,
            show_progress_bar=progress,
            catch=(),
        )
    wall_time = time.perf_counter() - started

    best = max(trials, key=lambda t: t.value)
    logger.info(
        "%s search: best %.4f after %d evaluations in %.1f s: %s",
        method,
        best.value,
        len(trials),
        wall_time,
        best.values,
    )
    return SearchResult(
        method=method,
        best=HyperparamSet(best.values),
        best_value=best.value,
        trials=trials,
        budget=budget,
        evaluations=len(trials),
        wall_time_s=wall_time,
    )


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _check_budget(budget: Any) -> None:
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise SearchError(f"budget must be an integer >= 1 evaluations, got {budget!r}")


def grid_points(grid: Mapping[str, list[float]]) -> int:
    """Return the number of points in a per-dimension grid."""
    return math.prod(len(values) for values in grid.values())


def tpe_search(
    objective: Objective,
    space: HyperparamSpace,
    budget: int,
    *,
    seed: int = 0,
    n_startup_trials: int = 10,
    progress: bool = True,
) -> SearchResult:
    """Run ``budget`` trials of the Tree-structured Parzen Estimator (Optuna's
    ``TPESampler``).

    The first ``min(n_startup_trials, budget)`` trials are drawn at random, as in
    :func:`gp_search`, so the two differ only in their surrogate model.
    """
    _check_budget(budget)
    startup = min(n_startup_trials, budget)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    result = _run_study("tpe", sampler, objective, space, budget, budget, progress)
    result.extra["n_startup_trials"] = startup
    return result


def random_search(
    objective: Objective,
    space: HyperparamSpace,
    budget: int,
    *,
    seed: int = 0,
    progress: bool = True,
) -> SearchResult:
    """Evaluate ``budget`` sets drawn uniformly from each hyperparameter's step grid.

    Draws are independent, so a set may repeat on a small space.
    """
    _check_budget(budget)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    return _run_study("random", sampler, objective, space, budget, budget, progress)
