"""Grid search and Gaussian-process Bayesian optimisation through Optuna."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptrec.data.splits import validation_split
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.tuning.search import (
    SearchError,
    build_grid,
    gp_search,
    grid_points,
    grid_search,
    ndcg_objective,
)

TARGET = {"alpha": 0.8, "w_content": 0.1, "w_kg": 0.4, "w_topic": 0.6, "beta": 0.007}


def distance_objective(space):
    """A smooth objective that peaks at TARGET, in units of each bound's span."""

    def objective(hyperparams):
        total = 0.0
        for name, target in TARGET.items():
            spec = space[name]
            total += ((hyperparams[name] - target) / (spec.max - spec.min)) ** 2
        return -total

    return objective


def on_step_grid(spec, value):
    steps = (value - spec.min) / spec.step
    return abs(steps - round(steps)) < 1e-6


@pytest.mark.parametrize("budget", [1, 7, 40, 100, 1_000])
def test_grid_fits_budget(space, budget):
    grid = build_grid(space, budget)

    assert grid_points(grid) <= budget
    assert list(grid) == space.names
    for spec in space:
        values = grid[spec.name]
        assert set(values) <= set(spec.grid())
        assert values == sorted(set(values))
        if len(values) >= 2:
            assert values[0] == spec.min
            assert values[-1] == pytest.approx(max(spec.grid()))
        else:
            assert values == [spec.initial]


def test_grid_spreads_budget_evenly(space):
    grid = build_grid(space, 100)
    sizes = [len(values) for values in grid.values()]

    assert max(sizes) - min(sizes) <= 1
    # One more point in any dimension would overshoot the budget.
    assert all(grid_points(grid) // n * (n + 1) > 100 for n in sizes)


def test_grid_covers_small_space_fully():
    space = HyperparamSpace.from_dicts(
        [
            {"name": "a", "min": 0.0, "max": 1.0, "step": 0.5, "initial": 0.5},
            {"name": "b", "min": 1.0, "max": 3.0, "step": 1.0, "initial": 1.0},
        ]
    )

    grid = build_grid(space, 50)

    assert grid == {"a": [0.0, 0.5, 1.0], "b": [1.0, 2.0, 3.0]}


def test_grid_search_evaluates_whole_grid(space):
    result = grid_search(distance_objective(space), space, budget=64, progress=False)

    assert result.grid_size == grid_points(result.grid)
    assert result.evaluations == result.grid_size <= 64
    assert len(result.trials) == result.evaluations
    visited = {tuple(t.values[n] for n in space.names) for t in result.trials}
    assert len(visited) == result.grid_size
    for trial in result.trials:
        for name, value in trial.values.items():
            assert value in result.grid[name]
    assert result.best_value == max(result.trial_values)
    assert result.best_value == pytest.approx(distance_objective(space)(result.best))
    assert result.wall_time_s > 0


def test_gp_search_respects_budget_bounds_steps(space):
    result = gp_search(
        distance_objective(space), space, budget=16, seed=3, progress=False
    )

    assert result.evaluations == 16
    assert len(result.trials) == 16
    for trial in result.trials:
        for spec in space:
            value = trial.values[spec.name]
            assert spec.min <= value <= spec.max
            assert on_step_grid(spec, value)
    assert result.best_value > distance_objective(space)(space.initial())


def test_gp_search_same_seed_same_trials(space):
    objective = distance_objective(space)

    first = gp_search(objective, space, budget=12, seed=1, progress=False)
    second = gp_search(objective, space, budget=12, seed=1, progress=False)

    assert [t.values for t in first.trials] == [t.values for t in second.trials]


def test_gp_beats_random_start(space):
    objective = distance_objective(space)

    result = gp_search(objective, space, budget=25, seed=0, progress=False)

    startup = [t.value for t in result.trials[:10]]
    assert result.best_value > max(startup)


def test_ndcg_objective_on_validation_split(recommender, fold, space):
    fit, validation = validation_split(fold.train, fraction=0.2, seed=0)
    objective = ndcg_objective(recommender, fit, validation, k=10)
    cf_only = space.validate(
        {**space.initial().values_dict, "alpha": 1.0, "w_content": 0.0, "w_kg": 0.0}
    )

    default = objective(space.initial())
    other = objective(cf_only)

    assert 0.0 <= default <= 1.0
    assert 0.0 <= other <= 1.0
    assert not math.isclose(default, other)


def test_grid_search_with_ndcg_objective(recommender, fold, space):
    fit, validation = validation_split(fold.train, fraction=0.2, seed=0)
    objective = ndcg_objective(recommender, fit, validation)

    result = grid_search(objective, space, budget=4, progress=False)

    assert result.evaluations == 4
    assert 0.0 < result.best_value <= 1.0


def test_budget_must_be_positive(space):
    with pytest.raises(SearchError, match="budget must be an integer >= 1"):
        build_grid(space, 0)
    with pytest.raises(SearchError, match="budget must be an integer >= 1"):
        gp_search(distance_objective(space), space, budget=-3, progress=False)


def test_non_finite_objective_rejected(space):
    with pytest.raises(SearchError, match="must return a finite number"):
        grid_search(lambda h: float("nan"), space, budget=2, progress=False)


def test_results_serialise(space):
    result = grid_search(distance_objective(space), space, budget=8, progress=False)

    document = result.to_dict()

    assert document["best"]["version"] == result.best.version
    assert document["grid_size"] == result.grid_size
    assert len(document["trials"]) == result.evaluations
    assert np.isfinite(document["best_value"])
