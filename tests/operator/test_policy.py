"""Parsing and checking of the HyperparamPolicy spec."""

from __future__ import annotations

import copy

import pytest

from adaptrec.hyperparams import HyperparamSpace
from adaptrec.operator.policy import (
    DEFAULT_COUNT_QUERY_TEMPLATE,
    PolicyError,
    parse_duration,
    parse_policy_spec,
)
from tests.operator.conftest import example_policy


def test_example_policy_parses():
    policy = example_policy()
    spec = parse_policy_spec(policy["spec"], "recs")
    assert spec.target.name == "movie-recommender"
    assert spec.target.namespace == "recs"
    assert spec.target.model_name == "movie-recommender"
    assert spec.feast is not None and spec.feast.repo_path == "/app/feature_repo"
    assert spec.training.gpus_per_replica == 1
    assert spec.training.args == ["train"]
    assert spec.rollout.strategy == "userHash"
    assert spec.rollout.analysis_interval == 300
    assert spec.rollout.deadline == 6 * 3600
    assert spec.rollout.count_query_template == DEFAULT_COUNT_QUERY_TEMPLATE
    assert spec.schedule.interval == 24 * 3600
    assert spec.schedule.ctr_threshold == 0.05


def test_example_space_matches_packaged_defaults():
    spec = parse_policy_spec(example_policy()["spec"], "recs")
    assert spec.space.to_dicts() == HyperparamSpace.from_yaml().to_dicts()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (45, 45)],
)
def test_duration_parses(text, seconds):
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "-1s", "0s", True, None])
def test_bad_duration_rejected(text):
    with pytest.raises(PolicyError, match="field"):
        parse_duration(text, "field")


def _broken(path: list[str], value) -> dict:
    policy = example_policy()
    node = policy["spec"]
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return policy


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["target"], KeyError, "spec.target"),
        (["target", "inferenceService"], "", "spec.target.inferenceService"),
        (["hyperparameters"], [], "at least one"),
        (["training", "image"], KeyError, "spec.training.image"),
        (["training", "replicas"], 0, "spec.training.replicas"),
        (["training", "backoffLimit"], "2", "spec.training.backoffLimit"),
        (["rollout", "strategy"], "blueGreen", "spec.rollout.strategy"),
        (["rollout", "canaryPercent"], 100, "spec.rollout.canaryPercent"),
        (["rollout", "configMapName"], KeyError, "spec.rollout.configMapName"),
        (["rollout", "analysisInterval"], "soon", "spec.rollout.analysisInterval"),
        (["rollout", "deadline"], "1m", "spec.rollout.deadline"),
        (["rollout", "confidence"], 1.5, "spec.rollout.confidence"),
        (["rollout", "prometheus", "url"], "prometheus:9090", "prometheus.url"),
        (["rollout", "prometheus", "queryTemplate"], "up", "queryTemplate"),
        (["schedule", "interval"], "daily", "spec.schedule.interval"),
    ],
)
def test_invalid_spec_names_field(path, value, field):
    policy = _broken(path, value)
    with pytest.raises(PolicyError, match=field.replace(".", r"\.")):
        parse_policy_spec(policy["spec"], "recs")


def test_bounds_reversed_rejected():
    policy = example_policy()
    entry = copy.deepcopy(policy["spec"]["hyperparameters"][0])
    entry.update(min=1.0, max=0.0)
    policy["spec"]["hyperparameters"][0] = entry
    with pytest.raises(PolicyError, match="alpha"):
        parse_policy_spec(policy["spec"], "recs")


def test_count_template_needs_metric_placeholder():
    policy = example_policy()
    policy["spec"]["rollout"]["prometheus"]["countQueryTemplate"] = (
        'sum(adaptrec_clicks_total{version="{version}"})'
    )
    with pytest.raises(PolicyError, match="countQueryTemplate"):
        parse_policy_spec(policy["spec"], "recs")


def test_training_spec_json_carries_space_and_agent(spec):
    import json

    document = json.loads(spec.training_spec_json())
    assert [h["name"] for h in document["hyperparameters"]] == spec.space.names
    assert document["agent"]["episodes"] == 200
    assert document["agent"]["epsilon"]["decaySteps"] == 5000
