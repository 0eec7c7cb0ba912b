"""HyperparamPolicy status and ownership on a real API server and controller manager."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from adaptrec.testing.controlplane import REPO_ROOT, ControlPlane, wait_until

pytestmark = pytest.mark.cluster

EXAMPLE_POLICY = REPO_ROOT / "examples" / "policy.yaml"
POLICY = "movie-recommender"

# A status as the operator writes it, with kopf's own fields: its progress
# records under status.kopf and a handler's return value under status.<handler>.
OPERATOR_STATUS: dict[str, Any] = {
    "phase": "Canary",
    "observedGeneration": 1,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "CanaryRunning",
            "message": "candidate 9b1e0f3a serves 10% of users",
            "lastTransitionTime": "2026-01-05T10:00:00Z",
        }
    ],
    "current": {"version": "3f2a9c1d", "values": {"alpha": 0.5, "w_kg": 0.2}},
    "candidate": {"version": "9b1e0f3a", "values": {"alpha": 0.6, "w_kg": 0.1}},
    "lastJobName": "movie-recommender-tune-3",
    "canary": {
        "startedAt": "2026-01-05T10:00:00Z",
        "stableCTR": 0.0702,
        "candidateCTR": 0.0731,
        "stableSamples": 18000,
        "candidateSamples": 2000,
    },
    "history": [
        {
            "version": "3f2a9c1d",
            "values": {"alpha": 0.5, "w_kg": 0.2},
            "decision": "Promoted",
            "reason": "candidate CTR within maxRegression",
            "stableCTR": 0.0688,
            "candidateCTR": 0.0702,
            "time": "2026-01-04T10:00:00Z",
            "round": 2,
            "jobName": "movie-recommender-tune-2",
        }
    ],
    "kopf": {
        "progress": {"reconcile": {"started": "2026-01-05T09:59:58Z", "retries": 1}}
    },
    "reconcile": {"message": "handler result kept by kopf"},
    "round": 3,
    "analysis": {"lastAnalysisAt": "2026-01-05T10:05:00Z", "decision": "Extend"},
}


def get_policy(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    output = plane.kubectl("get", "-n", namespace, "hpp", POLICY, "-o", "json").stdout
    return json.loads(output)


def patch_status(
    plane: ControlPlane, namespace: str, status: dict[str, Any], check: bool = True
):
    return plane.kubectl(
        "patch", "-n", namespace, "hpp", POLICY, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}), check=check,
    )  # fmt: skip


@pytest.fixture
def policy(crds: ControlPlane, namespace: str) -> dict[str, Any]:
    """The example policy, created in a fresh namespace; returns its stored form."""
    crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE_POLICY))
    return get_policy(crds, namespace)


def test_status_survives_read_back(
    crds: ControlPlane, namespace: str, policy: dict[str, Any]
) -> None:
    patch_status(crds, namespace, OPERATOR_STATUS)

    stored = get_policy(crds, namespace)

    assert stored["status"] == OPERATOR_STATUS
    assert stored["metadata"]["generation"] == policy["metadata"]["generation"]


def test_status_ignored_on_main_resource(
    crds: ControlPlane, namespace: str, policy: dict[str, Any]
) -> None:
    # With the status subresource, a write to the main resource drops status.
    crds.kubectl(
        "patch", "-n", namespace, "hpp", POLICY, "--type=merge",
        "-p", json.dumps({"status": {"phase": "Stable"}}),
    )  # fmt: skip

    stored = get_policy(crds, namespace)

    assert "status" not in stored


def test_spec_ignored_on_status_subresource(
    crds: ControlPlane, namespace: str, policy: dict[str, Any]
) -> None:
    crds.kubectl(
        "patch", "-n", namespace, "hpp", POLICY, "--subresource=status", "--type=merge",
        "-p", json.dumps({"spec": {"rollout": {"canaryPercent": 50}}}),
    )  # fmt: skip

    stored = get_policy(crds, namespace)

    assert stored["spec"]["rollout"]["canaryPercent"] == 10


def test_status_history_bounded(
    crds: ControlPlane, namespace: str, policy: dict[str, Any]
) -> None:
    entry = {"version": "3f2a9c1d", "decision": "RolledBack"}

    result = patch_status(crds, namespace, {"history": [entry] * 21}, check=False)

    assert result.returncode != 0
    assert "status.history" in result.stderr
    assert "must have at most 20 items" in result.stderr


def test_invalid_condition_status_rejected(
    crds: ControlPlane, namespace: str, policy: dict[str, Any]
) -> None:
    condition = {"type": "Ready", "status": "Yes"}

    result = patch_status(crds, namespace, {"conditions": [condition]}, check=False)

    assert result.returncode != 0
    assert "status.conditions[0].status" in result.stderr


def owned_job(name: str, policy: dict[str, Any] | None) -> dict[str, Any]:
    """A tuning Job manifest, owned by ``policy`` when one is given."""
    metadata: dict[str, Any] = {"name": name}
    if policy is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "adaptrec.io/v1alpha1",
                "kind": "HyperparamPolicy",
                "name": policy["metadata"]["name"],
                "uid": policy["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "adaptrec:0.1.0",
                            "args": ["train"],
                        }
                    ],
                }
            },
        },
    }


def job_exists(plane: ControlPlane, namespace: str, name: str) -> bool:
    result = plane.kubectl("get", "-n", namespace, "job", name, check=False)
    if result.returncode == 0:
        return True
    assert "NotFound" in result.stderr, result.stderr
    return False


def test_deleting_policy_collects_owned_job(
    crds: ControlPlane, namespace: str, policy: dict[str, Any]
) -> None:
    jobs = [owned_job("tune-1", policy), owned_job("unrelated", None)]
    crds.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input=yaml.safe_dump_all(jobs),
    )  # fmt: skip

    crds.kubectl("delete", "-n", namespace, "hpp", POLICY)
    wait_until(
        lambda: not job_exists(crds, namespace, "tune-1"),
        timeout_s=60,
        what="the garbage collector to delete the owned Job",
    )

    assert job_exists(crds, namespace, "unrelated")
