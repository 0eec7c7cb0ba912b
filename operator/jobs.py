"""The tuning Job: its manifest, its outcome and the result its pod reports.

Everything here is a pure function of the policy and of objects read from the
API, so the handlers stay thin and these rules are unit-tested without a cluster.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from adaptrec.hyperparams import HyperparamError, HyperparamSet, HyperparamSpace
from adaptrec.operator.policy import GROUP, KIND, VERSION, PolicySpec

CONTAINER_NAME = "trainer"
RESULT_PATH = "/dev/termination-log"
# A container's termination message is cut at 4096 bytes by the kubelet.
MAX_RESULT_BYTES = 4096
# Exit code of `adaptrec` for a usage or input error: retrying cannot help.
USAGE_EXIT_CODE = 2
MASTER_PORT = 29500
FEAST_CONFIG_DIR = "/etc/adaptrec/feast"

POLICY_LABEL = "adaptrec.io/policy"
ROUND_LABEL = "adaptrec.io/round"
MANAGED_BY = {"app.kubernetes.io/managed-by": "adaptrec-operator"}
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

_MAX_NAME = 63
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]")


class ResultError(ValueError):
    """A training result is missing or invalid."""


class JobState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobOutcome:
    """A Job's state from its conditions, with the condition's reason."""

    state: JobState
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class TrainingResult:
    """The hyperparameter set a training round chose, with its offline metrics."""

    hyperparams: HyperparamSet
    metrics: dict[str, float]
    episodes: int


def job_name(policy_name: str, policy_uid: str, round_number: int) -> str:
    """Return the Job name for a round, the same on every call.

    The uid part keeps a re-created policy of the same name from adopting an old
    policy's Job. The result fits the 63-character label limit of ``job-name``.
    """
    suffix = f"-r{round_number}-{policy_uid.replace('-', '')[:8]}"
    prefix = _NAME_UNSAFE.sub("-", policy_name.lower())[: _MAX_NAME - len(suffix)]
    return prefix.rstrip("-.") + suffix


def owner_reference(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Return a controller owner reference to the policy, for garbage collection."""
    metadata = policy["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _trainer_args(spec: PolicySpec) -> list[str]:
    """Return the container args: the policy's (``train`` by default) plus the
    flags that hand the declared space, the agent settings and the feature
    repository to ``adaptrec train``."""
    args = list(spec.training.args)
    args += ["--spec-json", spec.training_spec_json(), "--result-file", RESULT_PATH]
    if spec.feast is not None:
        args += ["--feature-repo", spec.feast.repo_path]
        if spec.feast.project:
            args += ["--feast-project", spec.feast.project]
        if spec.feast.config_map:
            args += ["--feature-store-yaml", f"{FEAST_CONFIG_DIR}/feature_store.yaml"]
    return args


def is_distributed(spec: PolicySpec) -> bool:
    """Return whether the round runs under torchrun (several pods or GPUs)."""
    return spec.training.replicas > 1 or spec.training.gpus_per_replica > 1


def _torchrun_command(spec: PolicySpec, name: str) -> list[str]:
    # Pod 0 is the rendezvous master. Indexed Job pods get the hostname
    # <job>-<index>, reachable as <job>-0.<service> through the headless Service
    # named like the Job.
    return [
        "torchrun",
        f"--nnodes={spec.training.replicas}",
        f"--nproc-per-node={max(1, spec.training.gpus_per_replica)}",
        "--node-rank=$(ADAPTREC_NODE_RANK)",
        f"--master-addr={name}-0.{name}",
        f"--master-port={MASTER_PORT}",
        "--no-python",
    ]


def build_job(
    policy: Mapping[str, Any], spec: PolicySpec, round_number: int
) -> dict[str, Any]:
    """Build the tuning Job manifest for one round of ``policy``."""
    metadata = policy["metadata"]
    name = job_name(metadata["name"], metadata["uid"], round_number)
    labels = {
        **MANAGED_BY,
        POLICY_LABEL: metadata["name"],
        ROUND_LABEL: str(round_number),
    }
    env = [
        {"name": "ADAPTREC_POLICY", "value": metadata["name"]},
        {"name": "ADAPTREC_ROUND", "value": str(round_number)},
    ]
    env += [dict(variable) for variable in spec.training.env]
    command = spec.training.command
    if is_distributed(spec):
        # The image's entrypoint is adaptrec; torchrun starts it once per GPU.
        command = _torchrun_command(spec, name) + (command or ["adaptrec"])
        env.append(
            {
                "name": "ADAPTREC_NODE_RANK",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": (
                            f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
                        )
                    }
                },
            }
        )
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.training.image,
        "args": _trainer_args(spec),
        "env": env,
        "resources": dict(spec.training.resources),
        "terminationMessagePath": RESULT_PATH,
        # An error's last log lines reach the operator's Job-failed message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if command:
        container["command"] = list(command)
    if spec.training.image_pull_policy:
        container["imagePullPolicy"] = spec.training.image_pull_policy
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.training.service_account_name,
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if spec.training.node_selector:
        pod_spec["nodeSelector"] = dict(spec.training.node_selector)
    if spec.training.tolerations:
        pod_spec["tolerations"] = list(spec.training.tolerations)
    if spec.feast is not None and spec.feast.config_map:
        pod_spec["volumes"] = [
            {"name": "feast-config", "configMap": {"name": spec.feast.config_map}}
        ]
        container["volumeMounts"] = [
            {"name": "feast-config", "mountPath": FEAST_CONFIG_DIR, "readOnly": True}
        ]
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.training.backoff_limit,
        "activeDeadlineSeconds": spec.training.active_deadline_seconds,
        "podFailurePolicy": {
            "rules": [
                # An evicted or preempted pod is the cluster's doing, not the
                # trainer's: retry it without spending the backoff limit.
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget"}],
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER_NAME,
                        "operator": "In",
                        "values": [USAGE_EXIT_CODE],
                    },
                },
            ]
        },
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if is_distributed(spec):
        job_spec["completionMode"] = "Indexed"
        job_spec["completions"] = spec.training.replicas
        job_spec["parallelism"] = spec.training.replicas
        pod_spec["subdomain"] = name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(policy)],
        },
        "spec": job_spec,
    }


def build_rendezvous_service(job: Mapping[str, Any]) -> dict[str, Any]:
    """Build the headless Service that gives an Indexed Job's pods DNS names."""
    metadata = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": dict(metadata.get("labels") or {}),
            "ownerReferences": list(metadata.get("ownerReferences") or []),
        },
        "spec": {
            "clusterIP": "None",
            "selector": {"batch.kubernetes.io/job-name": metadata["name"]},
            "ports": [{"name": "rendezvous", "port": MASTER_PORT}],
        },
    }


def job_outcome(job: Mapping[str, Any]) -> JobOutcome:
    """Read a Job's state from its ``Complete`` and ``Failed`` conditions."""
    conditions = (job.get("status") or {}).get("conditions") or []
    for condition in conditions:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobOutcome(JobState.SUCCEEDED, condition.get("reason") or "")
        if condition.get("type") == "Failed":
            return JobOutcome(
                JobState.FAILED,
                condition.get("reason") or "Failed",
                condition.get("message") or "",
            )
    return JobOutcome(JobState.RUNNING)


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER_NAME:
            return (status.get("state") or {}).get("terminated")
    return None


def _completion_index(pod: Mapping[str, Any]) -> int:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(COMPLETION_INDEX_ANNOTATION, 0))
    except ValueError:
        return 0


def result_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """Return the termination message of a pod whose trainer exited with 0.

    With several pods (an Indexed Job), rank 0 writes the result, so the pod with
    the lowest completion index that has a message wins.
    """
    candidates = []
    for pod in pods:
        terminated = _terminated(pod)
        if terminated is None or terminated.get("exitCode") != 0:
            continue
        message = terminated.get("message")
        if message:
            candidates.append((_completion_index(pod), message))
    if not candidates:
        return None
    return min(candidates)[1]


def parse_result(message: str | None, space: HyperparamSpace) -> TrainingResult:
    """Parse a training result and check it against the declared space.

    Raises :class:`ResultError` when the message is missing, too long, not
    JSON, or names values outside the declared bounds.
    """
    if not message:
        raise ResultError("the training pod finished without a result message")
    if len(message.encode("utf-8")) > MAX_RESULT_BYTES:
        raise ResultError(
            f"the training result is {len(message.encode('utf-8'))} bytes; the "
            f"limit is {MAX_RESULT_BYTES}"
        )
    try:
        document = json.loads(message)
    except json.JSONDecodeError as error:
        raise ResultError(f"the training result is not JSON: {error}") from None
    if not isinstance(document, Mapping) or "hyperparams" not in document:
        raise ResultError(
            'the training result must be {"hyperparams": {...}, "metrics": {...}, '
            '"episodes": n}'
        )
    try:
        hyperparams = HyperparamSet.from_json_dict(document["hyperparams"], space)
    except HyperparamError as error:
        raise ResultError(f"the training result's set is invalid: {error}") from None
    metrics_document = document.get("metrics") or {}
    if not isinstance(metrics_document, Mapping):
        raise ResultError("the training result's metrics must be an object")
    metrics = {
        str(key): float(value)
        for key, value in metrics_document.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }
    episodes = document.get("episodes", 0)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise ResultError(
            f"the training result's episodes must be a non-negative integer, "
            f"got {episodes!r}"
        )
    return TrainingResult(hyperparams=hyperparams, metrics=metrics, episodes=episodes)
