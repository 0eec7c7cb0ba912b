"""TPE and random search, the two baselines the benchmark adds beside grid and GP."""

from __future__ import annotations

import json

import pytest

from adaptrec.hyperparams import HyperparamSpace
from adaptrec.tuning.search import SearchError, random_search, tpe_search

SEARCHES = {"tpe": tpe_search, "random": random_search}
TARGET = {"alpha": 0.8, "w_content": 0.1, "w_kg": 0.4, "w_topic": 0.6}


@pytest.fixture(scope="module")
def space():
    return HyperparamSpace.from_yaml(None)


def distance_objective(space):
    """Peak at TARGET, in units of each bound's span."""

    def objective(hyperparams):
        return -sum(
            ((hyperparams[name] - target) / (space[name].max - space[name].min)) ** 2
            for name, target in TARGET.items()
        )

    return objective


def on_step_grid(spec, value):
    steps = (value - spec.min) / spec.step
    return abs(steps - round(steps)) < 1e-6


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_search_respects_budget_bounds_steps(space, method):
    result = SEARCHES[method](distance_objective(space), space, 12, seed=3)

    assert result.method == method
    assert result.evaluations == 12
    assert len(result.trials) == 12
    for trial in result.trials:
        for spec in space:
            assert spec.min <= trial.values[spec.name] <= spec.max
            assert on_step_grid(spec, trial.values[spec.name])
    assert result.best_value == max(result.trial_values)


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_search_same_seed_same_trials(space, method):
    first = SEARCHES[method](distance_objective(space), space, 8, seed=5)
    second = SEARCHES[method](distance_objective(space), space, 8, seed=5)
    other = SEARCHES[method](distance_objective(space), space, 8, seed=6)

    assert [t.values for t in first.trials] == [t.values for t in second.trials]
    assert [t.values for t in first.trials] != [t.values for t in other.trials]


def test_tpe_improves_on_its_random_start(space):
    result = tpe_search(
        distance_objective(space), space, 40, seed=0, n_startup_trials=10
    )

    assert result.extra["n_startup_trials"] == 10
    assert result.best_value > max(result.trial_values[:10])


@pytest.mark.parametrize("method", sorted(SEARCHES))
@pytest.mark.parametrize("budget", [0, -1, 2.5, True])
def test_search_budget_must_be_positive_integer(space, method, budget):
    with pytest.raises(SearchError, match="budget must be an integer"):
        SEARCHES[method](distance_objective(space), space, budget)


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_search_result_serialises(space, method):
    result = SEARCHES[method](distance_objective(space), space, 3, seed=0)

    document = json.loads(json.dumps(result.to_dict()))

    assert document["method"] == method
    assert len(document["trials"]) == 3
