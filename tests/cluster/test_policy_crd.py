"""The HyperparamPolicy CRD on a real API server: schema, CEL rules, status, GC."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from adaptrec.testing.controlplane import REPO_ROOT, ControlPlane

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
EXAMPLE_POLICY = REPO_ROOT / "examples" / "policy.yaml"


def example_policy() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_POLICY.read_text())


def apply(plane: ControlPlane, namespace: str, document: dict[str, Any]):
    return plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(document), check=False
    )


def get_json(plane: ControlPlane, namespace: str, *what: str) -> dict[str, Any]:
    output = plane.kubectl("get", "-n", namespace, *what, "-o", "json").stdout
    return json.loads(output)


@pytest.fixture(scope="module")
def policy_namespace(crds: ControlPlane) -> Iterator[str]:
    """One namespace for the table of invalid policies, which create nothing."""
    name = crds.create_namespace("invalid")
    yield name
    crds.kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_manifest_accepted(crds: ControlPlane, namespace: str, path) -> None:
    result = crds.kubectl("apply", "-n", namespace, "-f", str(path), check=False)

    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout


def test_get_hpp_shows_printer_columns(crds: ControlPlane, namespace: str) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE_POLICY))
    status = {
        "status": {
            "phase": "Canary",
            "current": {"version": "3f2a9c1d", "values": {"alpha": 0.5}},
            "canary": {"candidateCTR": 0.0731, "stableCTR": 0.0702},
        }
    }
    crds.kubectl(
        "patch", "-n", namespace, "hpp", "movie-recommender",
        "--subresource=status", "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip

    lines = crds.kubectl("get", "-n", namespace, "hpp").stdout.splitlines()

    assert lines[0].split() == ["NAME", "PHASE", "CURRENT", "CANARY-CTR", "AGE"]
    assert lines[1].split()[:4] == ["movie-recommender", "Canary", "3f2a9c1d", "0.0731"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Return a change that sets the dotted ``path`` of a policy to ``value``."""

    def change(policy: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = policy
        for key in parents:
            node = (
                node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            )
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    """Return a change that removes the dotted ``path`` from a policy."""

    def change(policy: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = policy
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[leaf]

    return change


def _hyperparameter(**fields: Any) -> Callable[[dict[str, Any]], None]:
    """Return a change that replaces fields of the first hyperparameter."""

    def change(policy: dict[str, Any]) -> None:
        policy["spec"]["hyperparameters"][0].update(fields)

    return change


def _gpu_limit(value: Any) -> Callable[[dict[str, Any]], None]:
    """Return a change that sets the trainer's nvidia.com/gpu limit."""

    def change(policy: dict[str, Any]) -> None:
        policy["spec"]["training"]["resources"]["limits"]["nvidia.com/gpu"] = value

    return change


# Each row: case id, change to the example policy, field path that the API
# server's message must name, and a phrase the message must contain.
INVALID_POLICIES = [
    ("bounds-reversed", _hyperparameter(min=1.0, max=0.0, initial=0.5),
     "spec.hyperparameters[0].max", "greater than"),
    ("bounds-equal", _hyperparameter(min=0.5, max=0.5, initial=0.5),
     "spec.hyperparameters[0].max", "greater than"),
    ("step-zero", _hyperparameter(step=0),
     "spec.hyperparameters[0].step", "greater than 0"),
    ("step-negative", _hyperparameter(step=-0.1),
     "spec.hyperparameters[0].step", "greater than 0"),
    ("initial-below-min", _hyperparameter(initial=-0.1),
     "spec.hyperparameters[0].initial", "within [min, max]"),
    ("initial-above-max", _hyperparameter(initial=1.5),
     "spec.hyperparameters[0].initial", "within [min, max]"),
    ("duplicate-names", _set("spec.hyperparameters.1.name", "alpha"),
     "spec.hyperparameters", "must be unique"),
    ("no-hyperparameters", _set("spec.hyperparameters", []),
     "spec.hyperparameters", "at least 1"),
    ("name-not-identifier", _hyperparameter(name="learning-rate"),
     "spec.hyperparameters[0].name", "should match"),
    ("min-wrong-type", _hyperparameter(min="low"),
     "spec.hyperparameters[0].min", "must be of type number"),
    ("negative-episodes", _set("spec.agent.episodes", -5),
     "spec.agent.episodes", "greater than or equal to 1"),
    ("episodes-wrong-type", _set("spec.agent.episodes", "many"),
     "spec.agent.episodes", "must be of type integer"),
    ("gamma-above-one", _set("spec.agent.gamma", 1.5),
     "spec.agent.gamma", "less than or equal to 1"),
    ("epsilon-end-above-start", _set("spec.agent.epsilon.start", 0.01),
     "spec.agent.epsilon.end", "must not exceed"),
    ("batch-above-replay", _set("spec.agent.batchSize", 100000),
     "spec.agent.batchSize", "must not exceed"),
    ("canary-zero", _set("spec.rollout.canaryPercent", 0),
     "spec.rollout.canaryPercent", "greater than or equal to 1"),
    ("canary-hundred", _set("spec.rollout.canaryPercent", 100),
     "spec.rollout.canaryPercent", "less than or equal to 99"),
    ("unknown-strategy", _set("spec.rollout.strategy", "blueGreen"),
     "spec.rollout.strategy", "Unsupported value"),
    ("user-hash-without-configmap", _delete("spec.rollout.configMapName"),
     "spec.rollout.configMapName", "is required when"),
    ("interval-not-duration", _set("spec.rollout.analysisInterval", "5 minutes"),
     "spec.rollout.analysisInterval", "should match"),
    ("deadline-before-interval", _set("spec.rollout.deadline", "1m"),
     "spec.rollout.deadline", "longer than"),
    ("query-without-version",
     _set("spec.rollout.prometheus.queryTemplate", "sum(rate(clicks_total[5m]))"),
     "spec.rollout.prometheus.queryTemplate", "{version}"),
    ("prometheus-url-not-http", _set("spec.rollout.prometheus.url", "prometheus:9090"),
     "spec.rollout.prometheus.url", "should match"),
    ("missing-target", _delete("spec.target"), "spec.target", "Required value"),
    ("missing-model", _delete("spec.target.model"),
     "spec.target.model", "Required value"),
    ("missing-image", _delete("spec.training.image"),
     "spec.training.image", "Required value"),
    ("gpu-not-quantity", _gpu_limit("one"),
     "spec.training.resources.limits.nvidia.com/gpu", "should match"),
    ("negative-backoff", _set("spec.training.backoffLimit", -1),
     "spec.training.backoffLimit", "greater than or equal to 0"),
    ("unknown-spec-field", _set("spec.tuner", "grid"),
     'unknown field "spec.tuner"', ""),
    ("unknown-nested-field", _set("spec.agent.learningRate", 0.001),
     'unknown field "spec.agent.learningRate"', ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [pytest.param(*row[1:], id=row[0]) for row in INVALID_POLICIES],
)
def test_invalid_policy_rejected(
    crds: ControlPlane,
    policy_namespace: str,
    request: pytest.FixtureRequest,
    change: Callable[[dict[str, Any]], None],
    field: str,
    phrase: str,
) -> None:
    policy = copy.deepcopy(example_policy())
    name = request.node.callspec.id
    policy["metadata"]["name"] = name
    change(policy)

    result = apply(crds, policy_namespace, policy)

    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert field in result.stderr
    assert phrase in result.stderr
    missing = crds.kubectl("get", "-n", policy_namespace, "hpp", name, check=False)
    assert "NotFound" in missing.stderr
