"""The HyperparamPolicy spec, parsed and checked.

The CRD's schema rejects most bad input at apply time. This module repeats the
checks that the handlers depend on, so a policy that slipped past an older CRD
version fails with :class:`PolicyError` naming the field, and the handler turns
that into a permanent error instead of a crash loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adaptrec.hyperparams import HyperparamError, HyperparamSpace

GROUP = "adaptrec.io"
VERSION = "v1alpha1"
PLURAL = "hyperparampolicies"
KIND = "HyperparamPolicy"

STRATEGIES = ("kserve", "userHash")
# The ServiceAccount the Helm chart creates for training Pods, without API rights.
DEFAULT_TRAINING_ACCOUNT = "adaptrec-training"

# Placeholders in the Prometheus query templates. They are replaced as plain
# text, so PromQL's own braces need no escaping.
QUERY_PLACEHOLDERS = ("{metric}", "{model}", "{version}", "{window}")
# One version's count of a counter ({metric}) over the window; the z test needs
# counts, not the click-through ratio that queryTemplate returns.
DEFAULT_COUNT_QUERY_TEMPLATE = (
    'sum(increase({metric}{model="{model}",version="{version}"}[{window}]))'
)
CLICKS_METRIC = "adaptrec_clicks_total"
RECOMMENDATIONS_METRIC = "adaptrec_recommendations_total"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class PolicyError(ValueError):
    """A HyperparamPolicy spec is invalid; the message names the field and the fix."""


def parse_duration(value: Any, field_name: str) -> float:
    """Parse seconds (a number) or a Go-style duration such as ``90s`` or ``1h30m``."""
    if isinstance(value, bool):
        raise PolicyError(f"{field_name} must be a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if "".join(number + unit for number, unit in parts) != text:
            raise PolicyError(
                f"{field_name} must be a duration such as '30s', '5m' or '1h30m', "
                f"got {value!r}"
            )
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    else:
        raise PolicyError(
            f"{field_name} must be a duration such as '30s' or a number of seconds, "
            f"got {value!r}"
        )
    if seconds <= 0:
        raise PolicyError(f"{field_name} must be positive, got {value!r}")
    return seconds


def format_window(seconds: float) -> str:
    """Format seconds as a PromQL range such as ``90s`` (whole seconds, at least 1)."""
    return f"{max(1, round(seconds))}s"


@dataclass(frozen=True)
class TargetRef:
    """The InferenceService whose hyperparameters the policy tunes."""

    name: str
    namespace: str
    model_name: str


@dataclass(frozen=True)
class FeastRef:
    """The Feast repository inside the training image, and optional overrides."""

    repo_path: str
    project: str | None = None
    config_map: str | None = None


@dataclass(frozen=True)
class AgentSettings:
    """DQN settings handed to the training Job as JSON."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class TrainingSpec:
    """The tuning Job's image, command, resources and placement."""

    image: str
    command: list[str] | None
    args: list[str]
    env: list[dict[str, Any]]
    resources: Mapping[str, Any]
    node_selector: Mapping[str, str]
    tolerations: list[Mapping[str, Any]]
    replicas: int
    active_deadline_seconds: int
    backoff_limit: int
    service_account_name: str
    image_pull_policy: str | None = None

    @property
    def gpus_per_replica(self) -> int:
        """GPUs requested per pod (``nvidia.com/gpu`` limit, else request)."""
        for section in ("limits", "requests"):
            amount = (self.resources.get(section) or {}).get("nvidia.com/gpu")
            if amount is not None:
                return int(amount)
        return 0


@dataclass(frozen=True)
class RolloutSpec:
    """The canary settings: strategy, share, analysis and decision thresholds."""

    strategy: str
    canary_percent: int
    analysis_interval: float
    min_samples: int
    max_regression: float
    deadline: float
    confidence: float
    prometheus_url: str
    ctr_query_template: str
    count_query_template: str
    config_map: str | None
    config_map_key: str = "rollout.json"


@dataclass(frozen=True)
class ScheduleSpec:
    """When a new tuning round starts without a spec change."""

    interval: float | None
    ctr_threshold: float | None


@dataclass(frozen=True)
class PolicySpec:
    """A parsed, checked HyperparamPolicy spec."""

    target: TargetRef
    feast: FeastRef | None
    space: HyperparamSpace
    agent: AgentSettings
    training: TrainingSpec
    rollout: RolloutSpec
    schedule: ScheduleSpec

    def training_spec_json(self) -> str:
        """Return the JSON the trainer reads with ``--spec-json``."""
        document = {
            "hyperparameters": self.space.to_dicts(),
            "agent": self.agent.to_json_dict(),
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _section(spec: Mapping[str, Any], name: str, required: bool = False) -> Mapping:
    value = spec.get(name)
    if value is None:
        if required:
            raise PolicyError(f"spec.{name} is required")
        return {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"spec.{name} must be an object, got {type(value).__name__}")
    return value


def _string(section: Mapping, key: str, path: str, default: str | None = None) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{path}.{key} must be a non-empty string, got {value!r}")
    return value


def _integer(
    section: Mapping, key: str, path: str, default: int, low: int, high: int | None
) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{path}.{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f"..{high}"
        raise PolicyError(f"{path}.{key} must lie in {low}{upper}, got {value}")
    return value


def _number(
    section: Mapping, key: str, path: str, default: float, low: float, high: float
) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{path}.{key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise PolicyError(f"{path}.{key} must lie in [{low}, {high}], got {value}")
    return float(value)


def _string_list(section: Mapping, key: str, path: str) -> list[str] | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{path}.{key} must be a list of strings, got {value!r}")
    return list(value)


def _parse_target(spec: Mapping, namespace: str) -> TargetRef:
    target = _section(spec, "target", required=True)
    name = _string(target, "inferenceService", "spec.target")
    return TargetRef(
        name=name,
        namespace=_string(target, "namespace", "spec.target", default=namespace),
        model_name=_string(target, "model", "spec.target", default=name),
    )


def _parse_feast(spec: Mapping) -> FeastRef | None:
    feast = _section(spec, "feast")
    if not feast:
        return None
    path = "spec.feast"
    project = feast.get("project")
    config_map = feast.get("configMapName")
    for key, value in (("project", project), ("configMapName", config_map)):
        if value is not None and (not isinstance(value, str) or not value):
            raise PolicyError(f"{path}.{key} must be a non-empty string, got {value!r}")
    return FeastRef(
        repo_path=_string(feast, "repoPath", path),
        project=project,
        config_map=config_map,
    )


def _parse_training(spec: Mapping, training_account: str) -> TrainingSpec:
    training = _section(spec, "training", required=True)
    path = "spec.training"
    resources = training.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise PolicyError(f"{path}.resources must be an object with requests/limits")
    node_selector = training.get("nodeSelector") or {}
    if not isinstance(node_selector, Mapping):
        raise PolicyError(f"{path}.nodeSelector must be a map of strings")
    tolerations = training.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise PolicyError(f"{path}.tolerations must be a list")
    env = training.get("env") or []
    if not isinstance(env, list) or not all(
        isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in env
    ):
        raise PolicyError(f"{path}.env must be a list of {{name, value}} objects")
    pull_policy = training.get("imagePullPolicy")
    args = _string_list(training, "args", path)
    return TrainingSpec(
        image=_string(training, "image", path),
        command=_string_list(training, "command", path),
        args=["train"] if args is None else args,
        env=[dict(item) for item in env],
        resources=dict(resources),
        node_selector=dict(node_selector),
        tolerations=list(tolerations),
        replicas=_integer(training, "replicas", path, 1, 1, 64),
        active_deadline_seconds=_integer(
            training, "activeDeadlineSeconds", path, 7200, 1, None
        ),
        backoff_limit=_integer(training, "backoffLimit", path, 1, 0, 10),
        service_account_name=_string(
            training, "serviceAccountName", path, default=training_account
        ),
        image_pull_policy=pull_policy if isinstance(pull_policy, str) else None,
    )


def _parse_rollout(spec: Mapping) -> RolloutSpec:
    rollout = _section(spec, "rollout", required=True)
    path = "spec.rollout"
    strategy = rollout.get("strategy")
    if strategy not in STRATEGIES:
        raise PolicyError(
            f"{path}.strategy must be one of {list(STRATEGIES)}, got {strategy!r}"
        )
    prometheus = rollout.get("prometheus")
    if not isinstance(prometheus, Mapping):
        raise PolicyError(
            f"{path}.prometheus must be an object with url and queryTemplate"
        )
    url = prometheus.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise PolicyError(
            f"{path}.prometheus.url must be an http(s) URL such as "
            f"'http://prometheus-operated.monitoring:9090', got {url!r}"
        )
    ctr_template = _template(prometheus, "queryTemplate", None, path)
    count_template = _template(
        prometheus, "countQueryTemplate", DEFAULT_COUNT_QUERY_TEMPLATE, path
    )
    if "{metric}" not in count_template:
        raise PolicyError(
            f"{path}.prometheus.countQueryTemplate must contain {{metric}}, "
            f"got {count_template!r}"
        )
    config_map = rollout.get("configMapName")
    if strategy == "userHash" and not config_map:
        raise PolicyError(f"{path}.configMapName is required for the userHash strategy")
    interval = parse_duration(
        rollout.get("analysisInterval", "1m"), f"{path}.analysisInterval"
    )
    deadline = parse_duration(rollout.get("deadline", "1h"), f"{path}.deadline")
    if deadline <= interval:
        raise PolicyError(
            f"{path}.deadline ({deadline:g}s) must be longer than "
            f"{path}.analysisInterval ({interval:g}s)"
        )
    return RolloutSpec(
        strategy=strategy,
        canary_percent=_integer(rollout, "canaryPercent", path, 10, 1, 99),
        analysis_interval=interval,
        min_samples=_integer(rollout, "minSamples", path, 1000, 1, None),
        max_regression=_number(rollout, "maxRegression", path, 0.0, 0.0, 1.0),
        deadline=deadline,
        confidence=_number(rollout, "confidence", path, 0.95, 0.5, 0.9999),
        prometheus_url=url.rstrip("/"),
        ctr_query_template=ctr_template,
        count_query_template=count_template,
        config_map=config_map,
    )


def _template(section: Mapping, key: str, default: str | None, path: str) -> str:
    template = section.get(key, default)
    if not isinstance(template, str) or "{version}" not in template:
        raise PolicyError(
            f"{path}.prometheus.{key} must be a PromQL template containing "
            f"{{version}} (placeholders: {', '.join(QUERY_PLACEHOLDERS)}), "
            f"got {template!r}"
        )
    return template


def _parse_schedule(spec: Mapping) -> ScheduleSpec:
    schedule = _section(spec, "schedule")
    path = "spec.schedule"
    interval = schedule.get("interval")
    threshold = schedule.get("ctrThreshold")
    return ScheduleSpec(
        interval=None
        if interval is None
        else parse_duration(interval, f"{path}.interval"),
        ctr_threshold=None
        if threshold is None
        else _number(schedule, "ctrThreshold", path, 0.0, 0.0, 1.0),
    )


def parse_policy_spec(
    spec: Mapping[str, Any],
    namespace: str,
    training_account: str = DEFAULT_TRAINING_ACCOUNT,
) -> PolicySpec:
    """Parse a HyperparamPolicy's ``spec``; raise :class:`PolicyError` if invalid.

    ``training_account`` is the ServiceAccount of training Pods when the spec
    names none.
    """
    if not isinstance(spec, Mapping):
        raise PolicyError("spec must be an object")
    target = _parse_target(spec, namespace)
    try:
        space = HyperparamSpace.from_dicts(
            spec.get("hyperparameters"), source="spec.hyperparameters"
        )
    except HyperparamError as error:
        raise PolicyError(str(error)) from None
    agent = _section(spec, "agent")
    return PolicySpec(
        target=target,
        feast=_parse_feast(spec),
        space=space,
        agent=AgentSettings(dict(agent)),
        training=_parse_training(spec, training_account),
        rollout=_parse_rollout(spec),
        schedule=_parse_schedule(spec),
    )
