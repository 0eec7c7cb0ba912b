"""Patches for the InferenceService and the rollout ConfigMap."""

from __future__ import annotations

import copy
import json

import pytest

from adaptrec.operator import targets
from adaptrec.rollout import Rollout


@pytest.fixture
def sets(spec):
    stable = spec.space.initial()
    candidate = spec.space.validate({**stable.values_dict, "alpha": 0.7})
    return stable, candidate


def _isvc(env=None, containers=False, annotations=None, status=None):
    predictor = {}
    if containers:
        predictor["containers"] = [
            {"name": "kserve-container", "image": "adaptrec", "env": env or []},
            {"name": "sidecar", "image": "proxy"},
        ]
    else:
        predictor["model"] = {"modelFormat": {"name": "adaptrec"}, "env": env or []}
    return {
        "metadata": {"name": "movie-recommender", "annotations": annotations or {}},
        "spec": {"predictor": predictor},
        "status": status or {},
    }


def _apply(isvc, patch):
    """Apply a JSON merge patch (RFC 7396) the way the API server does."""

    def merge(target, change):
        if not isinstance(change, dict):
            return change
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in change.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = merge(result.get(key), value)
        return result

    return merge(copy.deepcopy(isvc), patch)


def test_canary_patch_sets_env_and_percent(sets):
    stable, candidate = sets
    isvc = _isvc(env=[{"name": "OTHER", "value": "1"}])
    patch = targets.isvc_patch(isvc, candidate, 10)
    patched = _apply(isvc, patch)
    assert targets.read_isvc_set(patched) == candidate
    assert targets.read_canary_percent(patched) == 10
    env = patched["spec"]["predictor"]["model"]["env"]
    assert {"name": "OTHER", "value": "1"} in env
    assert patched["metadata"]["annotations"][targets.VERSION_ANNOTATION] == (
        candidate.version
    )
    assert targets.isvc_patch(patched, candidate, 10) is None


def test_promotion_patch_removes_canary_percent(sets):
    _, candidate = sets
    isvc = _apply(_isvc(), targets.isvc_patch(_isvc(), candidate, 10))
    promoted = _apply(isvc, targets.isvc_patch(isvc, candidate, None))
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert targets.isvc_serves_stable(promoted, candidate)


def test_custom_container_patch_keeps_other_containers(sets):
    stable, _ = sets
    isvc = _isvc(containers=True)
    patched = _apply(isvc, targets.isvc_patch(isvc, stable, None))
    containers = patched["spec"]["predictor"]["containers"]
    assert [c["name"] for c in containers] == ["kserve-container", "sidecar"]
    assert targets.read_isvc_set(patched) == stable


def test_stable_needs_rolled_out_revision(sets):
    stable, _ = sets
    isvc = _apply(_isvc(), targets.isvc_patch(_isvc(), stable, None))
    isvc["status"] = {
        "components": {
            "predictor": {
                "latestReadyRevision": "p-00002",
                "latestRolledoutRevision": "p-00001",
            }
        }
    }
    assert not targets.isvc_serves_stable(isvc, stable)
    isvc["status"]["components"]["predictor"]["latestRolledoutRevision"] = "p-00002"
    assert targets.isvc_serves_stable(isvc, stable)


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        ({}, False),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, False),
        ({"conditions": [{"type": "Ready", "status": "True"}]}, True),
        (
            {
                "conditions": [{"type": "Ready", "status": "True"}],
                "components": {
                    "predictor": {
                        "latestCreatedRevision": "p-00003",
                        "latestReadyRevision": "p-00002",
                    }
                },
            },
            False,
        ),
    ],
)
def test_readiness_needs_newest_revision(status, ready):
    assert targets.isvc_ready(_isvc(status=status)) is ready


def test_raw_deployment_detected():
    raw = _isvc(annotations={targets.DEPLOYMENT_MODE_ANNOTATION: "RawDeployment"})
    assert targets.is_raw_deployment(raw)
    assert not targets.is_raw_deployment(_isvc())


def test_configmap_round_trip(sets):
    stable, candidate = sets
    rollout = Rollout(stable, candidate, 10)
    configmap = targets.build_rollout_configmap(
        "cm", "recs", "rollout.json", rollout, "p"
    )
    assert targets.read_configmap_rollout(configmap, "rollout.json") == rollout
    document = json.loads(configmap["data"]["rollout.json"])
    assert document == rollout.to_json_dict()
    assert targets.configmap_patch(configmap, "rollout.json", rollout) is None
    patch = targets.configmap_patch(configmap, "rollout.json", Rollout(stable))
    assert json.loads(patch["data"]["rollout.json"])["candidate"] is None


def test_invalid_configmap_reads_as_absent(spec):
    configmap = {"data": {"rollout.json": "{not json"}}
    assert targets.read_configmap_rollout(configmap, "rollout.json") is None
    assert targets.read_configmap_rollout(None, "rollout.json") is None
    out_of_bounds = {
        "stable": {"values": {**spec.space.initial().values_dict, "alpha": 7.0}},
        "candidate": None,
        "canaryPercent": 0,
    }
    configmap = {"data": {"rollout.json": json.dumps(out_of_bounds)}}
    assert targets.read_configmap_rollout(configmap, "rollout.json") is not None
    assert targets.read_configmap_rollout(configmap, "rollout.json", spec.space) is None
