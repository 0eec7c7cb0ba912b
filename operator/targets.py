"""Where a rollout lands: the InferenceService or the rollout ConfigMap.

``kserve``: the predictor's container carries the set as the environment variable
``ADAPTREC_HYPERPARAMS`` (the set's JSON, ``{"version", "values"}``), and
``spec.predictor.canaryTrafficPercent`` sends that share of requests to the new
revision. A change to the environment makes KServe create a revision, so the
candidate runs beside the previous, stable revision. KServe splits traffic this way
only in Serverless mode; in RawDeployment mode the field is ignored.

``userHash``: the model server's rollout ConfigMap contains
``{"stable", "candidate", "canaryPercent"}`` under one key, and the server assigns
each user by a stable hash of the user id.

The functions compute manifests and patches from what was read, and return None
when the object already matches, so a repeated call changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adaptrec.hyperparams import HyperparamError, HyperparamSet, HyperparamSpace
from adaptrec.operator.jobs import MANAGED_BY, POLICY_LABEL
from adaptrec.rollout import Rollout, RolloutError

HYPERPARAMS_ENV = "ADAPTREC_HYPERPARAMS"
VERSION_ANNOTATION = "adaptrec.io/hyperparams-version"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
RAW_DEPLOYMENT = "RawDeployment"


def set_json(hyperparams: HyperparamSet) -> str:
    return json.dumps(hyperparams.to_json_dict(), sort_keys=True, separators=(",", ":"))


# ConfigMap (userHash) -------------------------------------------------------


def build_rollout_configmap(
    name: str, namespace: str, key: str, rollout: Rollout, policy_name: str
) -> dict[str, Any]:
    """Build the rollout ConfigMap. It has no owner, so it outlives the policy."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, POLICY_LABEL: policy_name},
        },
        "data": {key: rollout_text(rollout)},
    }


def rollout_text(rollout: Rollout) -> str:
    return json.dumps(rollout.to_json_dict(), sort_keys=True, indent=2) + "\n"


def read_configmap_rollout(
    configmap: Mapping[str, Any] | None, key: str, space: HyperparamSpace | None = None
) -> Rollout | None:
    """Parse the rollout in a ConfigMap; None when absent or invalid."""
    if configmap is None:
        return None
    text = (configmap.get("data") or {}).get(key)
    if not text:
        return None
    try:
        return Rollout.from_json_dict(json.loads(text), space)
    except (json.JSONDecodeError, RolloutError):
        return None


def configmap_patch(
    configmap: Mapping[str, Any], key: str, desired: Rollout
) -> dict[str, Any] | None:
    """Return a merge patch that makes the ConfigMap hold ``desired``, or None."""
    if read_configmap_rollout(configmap, key) == desired:
        return None
    return {"data": {key: rollout_text(desired)}}


# InferenceService (kserve) --------------------------------------------------


def _predictor_container(isvc: Mapping[str, Any]) -> tuple[list[str], Mapping]:
    """Return the path to the container spec that serves the model, and the spec."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    if isinstance(predictor.get("model"), Mapping):
        return ["spec", "predictor", "model"], predictor["model"]
    containers = predictor.get("containers") or []
    if containers and isinstance(containers[0], Mapping):
        return ["spec", "predictor", "containers"], containers[0]
    return ["spec", "predictor", "model"], {}


def read_isvc_set(
    isvc: Mapping[str, Any], space: HyperparamSpace | None = None
) -> HyperparamSet | None:
    """Return the set in the predictor's ``ADAPTREC_HYPERPARAMS``; None if absent."""
    _, container = _predictor_container(isvc)
    for variable in container.get("env") or []:
        if variable.get("name") == HYPERPARAMS_ENV:
            try:
                return HyperparamSet.from_json_dict(
                    json.loads(variable.get("value") or ""), space
                )
            except (json.JSONDecodeError, HyperparamError):
                return None
    return None


def read_canary_percent(isvc: Mapping[str, Any]) -> int | None:
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    value = predictor.get("canaryTrafficPercent")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def isvc_patch(
    isvc: Mapping[str, Any], hyperparams: HyperparamSet, canary_percent: int | None
) -> dict[str, Any] | None:
    """Return a merge patch that serves ``hyperparams`` at ``canary_percent``.

    ``canary_percent`` None means the latest revision takes all traffic. Returns
    None when the InferenceService already matches.
    """
    if (
        read_isvc_set(isvc) == hyperparams
        and read_canary_percent(isvc) == canary_percent
    ):
        return None
    path, container = _predictor_container(isvc)
    env = [
        dict(variable)
        for variable in container.get("env") or []
        if variable.get("name") != HYPERPARAMS_ENV
    ]
    env.append({"name": HYPERPARAMS_ENV, "value": set_json(hyperparams)})
    predictor_patch: dict[str, Any] = {"canaryTrafficPercent": canary_percent}
    if path[-1] == "containers":
        # A merge patch replaces lists whole, so every container is sent back.
        containers = [dict(c) for c in isvc["spec"]["predictor"]["containers"]]
        containers[0] = {**containers[0], "env": env}
        predictor_patch["containers"] = containers
    else:
        predictor_patch["model"] = {"env": env}
    return {
        "metadata": {"annotations": {VERSION_ANNOTATION: hyperparams.version}},
        "spec": {"predictor": predictor_patch},
    }


def is_raw_deployment(isvc: Mapping[str, Any]) -> bool:
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEPLOYMENT_MODE_ANNOTATION) == RAW_DEPLOYMENT


def _predictor_status(isvc: Mapping[str, Any]) -> Mapping[str, Any]:
    components = (isvc.get("status") or {}).get("components") or {}
    return components.get("predictor") or {}


def isvc_ready(isvc: Mapping[str, Any]) -> bool:
    """Return whether the InferenceService and its newest revision are ready."""
    conditions = (isvc.get("status") or {}).get("conditions") or []
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )
    predictor = _predictor_status(isvc)
    created = predictor.get("latestCreatedRevision")
    latest_ready = predictor.get("latestReadyRevision")
    if created and created != latest_ready:
        return False
    return ready


def isvc_serves_stable(isvc: Mapping[str, Any], hyperparams: HyperparamSet) -> bool:
    """Return whether the rolled-out revision serves ``hyperparams`` to all traffic.

    Without KServe's predictor status (no controller writes it, as in tests), the
    spec alone is checked.
    """
    if read_isvc_set(isvc) != hyperparams or read_canary_percent(isvc) is not None:
        return False
    predictor = _predictor_status(isvc)
    rolled_out = predictor.get("latestRolledoutRevision")
    latest_ready = predictor.get("latestReadyRevision")
    if rolled_out and latest_ready:
        return rolled_out == latest_ready
    return True
