"""The policy's state machine: what to do next, from the status and what was seen.

A round moves through these phases, and the status records each step before the
operator acts on it, so a restarted operator resumes where the last one stopped::

    Pending -> Training -> Canary -> Promoting -> Stable
                  |          |---> RollingBack -> Stable
                  '-> Stable (round failed, Degraded=True)

``Failed`` means the spec itself is invalid; a spec change leaves it. Every
function here is pure: it reads a status dict and observations and returns a new
status dict, so the rules are tested without a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from adaptrec.hyperparams import HyperparamError, HyperparamSet, HyperparamSpace
from adaptrec.operator.analysis import CanaryFigures, Decision, Outcome
from adaptrec.operator.policy import PolicySpec
from adaptrec.rollout import Rollout

# The CRD caps status.history at 20 entries.
HISTORY_LIMIT = 20


class Phase(StrEnum):
    PENDING = "Pending"
    TRAINING = "Training"
    CANARY = "Canary"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    STABLE = "Stable"
    FAILED = "Failed"


CONDITION_TYPES = ("Ready", "Training", "Analyzing", "Degraded")


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def seconds_since(text: Any, now: datetime) -> float | None:
    moment = parse_time(text)
    return None if moment is None else (now - moment).total_seconds()


def read_set(
    document: Any, space: HyperparamSpace | None = None
) -> HyperparamSet | None:
    """Parse a set stored in the status; None when absent or no longer valid."""
    if not isinstance(document, Mapping):
        return None
    try:
        return HyperparamSet.from_json_dict(document, space)
    except HyperparamError:
        return None


def phase_of(status: Mapping[str, Any]) -> Phase:
    try:
        return Phase(status.get("phase") or Phase.PENDING)
    except ValueError:
        return Phase.PENDING


# Conditions -------------------------------------------------------------------


def set_condition(
    status: dict[str, Any],
    kind: str,
    value: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> None:
    """Set one condition in place; its transition time moves only on a change."""
    text = "True" if value else "False"
    conditions = [dict(c) for c in status.get("conditions") or []]
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != text:
                condition["lastTransitionTime"] = format_time(now)
            condition.update(status=text, reason=reason, message=message)
            if generation is not None:
                condition["observedGeneration"] = generation
            break
    else:
        condition = {
            "type": kind,
            "status": text,
            "reason": reason,
            "message": message,
            "lastTransitionTime": format_time(now),
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        conditions.append(condition)
    order = {name: index for index, name in enumerate(CONDITION_TYPES)}
    conditions.sort(key=lambda c: order.get(c.get("type"), len(order)))
    status["conditions"] = conditions


def condition_of(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def _phase_conditions(status: dict[str, Any], now: datetime, generation: int) -> None:
    phase = phase_of(status)
    current = (status.get("current") or {}).get("version", "none")
    candidate = (status.get("candidate") or {}).get("version", "none")
    set_condition(
        status,
        "Ready",
        phase not in (Phase.PENDING, Phase.FAILED),
        "Serving" if phase != Phase.FAILED else "InvalidSpec",
        f"users are served hyperparameter set {current}",
        now,
        generation,
    )
    set_condition(
        status,
        "Training",
        phase == Phase.TRAINING,
        "JobRunning" if phase == Phase.TRAINING else "Idle",
        f"tuning Job {status.get('lastJobName')} is running"
        if phase == Phase.TRAINING
        else "no tuning Job is running",
        now,
        generation,
    )
    analyzing = phase in (Phase.CANARY, Phase.PROMOTING, Phase.ROLLING_BACK)
    set_condition(
        status,
        "Analyzing",
        analyzing,
        str(phase) if analyzing else "Idle",
        f"candidate {candidate} is in phase {phase}"
        if analyzing
        else "no canary is running",
        now,
        generation,
    )


# Round start --------------------------------------------------------------------


def retune_reason(
    status: Mapping[str, Any],
    spec: PolicySpec,
    generation: int,
    now: datetime,
    stable_ctr: float | None = None,
) -> str | None:
    """Return why a new tuning round should start now, or None.

    A round starts for a new policy, after a spec change (one round per change
    when there is no schedule), when ``schedule.interval`` has passed since the
    last round ended, or when the stable click-through is below
    ``schedule.ctrThreshold``. The CTR trigger waits for ``rollout.deadline``
    after a round ends, so a set that cannot reach the threshold does not start
    back-to-back GPU jobs.
    """
    phase = phase_of(status)
    if phase == Phase.PENDING:
        return "NewPolicy"
    if phase not in (Phase.STABLE, Phase.FAILED):
        return None
    if status.get("observedGeneration") != generation:
        return "SpecChanged"
    if phase == Phase.FAILED:
        return None
    since_last = seconds_since(status.get("lastRoundFinishedAt"), now)
    if since_last is None:
        return None
    if spec.schedule.interval is not None and since_last >= spec.schedule.interval:
        return "Schedule"
    threshold = spec.schedule.ctr_threshold
    if (
        threshold is not None
        and stable_ctr is not None
        and stable_ctr < threshold
        and since_last >= spec.rollout.deadline
    ):
        return "CTRBelowThreshold"
    return None


def wants_ctr_check(status: Mapping[str, Any], spec: PolicySpec, now: datetime) -> bool:
    """Whether the stable click-through should be read for the CTR trigger now."""
    if spec.schedule.ctr_threshold is None or phase_of(status) != Phase.STABLE:
        return False
    since_last = seconds_since(status.get("lastRoundFinishedAt"), now)
    return since_last is not None and since_last >= spec.rollout.deadline


def initial_status(
    status: Mapping[str, Any], current: HyperparamSet, now: datetime, generation: int
) -> dict[str, Any]:
    """Return the status of a policy seen for the first time."""
    new = copy.deepcopy(dict(status))
    new.update(
        phase=str(Phase.STABLE),
        current=current.to_json_dict(),
        candidate=None,
        round=int(status.get("round") or 0),
        observedGeneration=generation,
    )
    _phase_conditions(new, now, generation)
    return new


def start_round(
    status: Mapping[str, Any],
    job_name: str,
    reason: str,
    now: datetime,
    generation: int,
) -> dict[str, Any]:
    """Return the status of a new round whose Job is ``job_name``."""
    new = copy.deepcopy(dict(status))
    new.update(
        phase=str(Phase.TRAINING),
        round=int(status.get("round") or 0) + 1,
        lastJobName=job_name,
        roundStartedAt=format_time(now),
        roundReason=reason,
        candidate=None,
        observedGeneration=generation,
    )
    _phase_conditions(new, now, generation)
    return new


def next_job_round(status: Mapping[str, Any]) -> int:
    return int(status.get("round") or 0) + 1


# Training outcome ---------------------------------------------------------------


def _history_entry(
    hyperparams: Mapping[str, Any] | None,
    decision: str,
    reason: str,
    now: datetime,
    status: Mapping[str, Any],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "version": (hyperparams or {}).get("version", "none"),
        "decision": decision,
        "reason": reason[:1024],
        "time": format_time(now),
        "round": int(status.get("round") or 0),
        "jobName": status.get("lastJobName") or "",
    }
    if hyperparams and "values" in hyperparams:
        entry["values"] = dict(hyperparams["values"])
    canary = status.get("canary") or {}
    for key in ("stableCTR", "candidateCTR"):
        if canary.get(key) is not None:
            entry[key] = canary[key]
    return entry


def _append_history(status: dict[str, Any], entry: dict[str, Any]) -> None:
    history = list(status.get("history") or []) + [entry]
    status["history"] = history[-HISTORY_LIMIT:]


def fail_round(
    status: Mapping[str, Any], reason: str, message: str, now: datetime, generation: int
) -> dict[str, Any]:
    """Return the status after a round that produced no usable set."""
    new = copy.deepcopy(dict(status))
    _append_history(
        new, _history_entry(None, "Failed", f"{reason}: {message}", now, new)
    )
    new.update(
        phase=str(Phase.STABLE),
        candidate=None,
        lastRoundFinishedAt=format_time(now),
    )
    _phase_conditions(new, now, generation)
    set_condition(new, "Degraded", True, reason, message, now, generation)
    return new


def start_canary(
    status: Mapping[str, Any],
    candidate: HyperparamSet,
    metrics: Mapping[str, float],
    spec: PolicySpec,
    now: datetime,
    generation: int,
) -> dict[str, Any]:
    """Return the status with ``candidate`` under canary from ``now``."""
    new = copy.deepcopy(dict(status))
    new.update(
        phase=str(Phase.CANARY),
        candidate=candidate.to_json_dict(),
        trainingMetrics=dict(metrics),
        **_fresh_canary(status, candidate, spec, now, generation),
    )
    _phase_conditions(new, now, generation)
    set_condition(new, "Degraded", False, "RoundSucceeded", "training succeeded", now)
    return new


def _fresh_canary(
    status: Mapping[str, Any],
    candidate: HyperparamSet,
    spec: PolicySpec,
    now: datetime,
    generation: int,
) -> dict[str, Any]:
    """Return new ``canary`` (the figures users see) and ``analysis`` (the
    operator's bookkeeping) entries for a canary that starts at ``now``."""
    return {
        "canary": {"startedAt": format_time(now)},
        "analysis": {
            "percent": spec.rollout.canary_percent,
            "stableVersion": (status.get("current") or {}).get("version"),
            "candidateVersion": candidate.version,
            "observedGeneration": generation,
        },
    }


def restart_canary_if_spec_changed(
    status: Mapping[str, Any], spec: PolicySpec, now: datetime, generation: int
) -> dict[str, Any] | None:
    """Return a status whose analysis starts over if the spec changed mid-canary.

    A changed spec may move the percentage, the margin or the bounds, so figures
    gathered under the old spec say nothing about the new one. A candidate that
    the new bounds reject is rolled back instead. Returns None when nothing
    changed.
    """
    analysis = status.get("analysis") or {}
    if analysis.get("observedGeneration") == generation:
        return None
    candidate = read_set(status.get("candidate"), spec.space)
    if candidate is None:
        return roll_back(
            status,
            Decision(
                Outcome.ROLLBACK,
                "OutOfBounds",
                "the changed spec's bounds reject the candidate",
            ),
            now,
            generation,
        )
    new = copy.deepcopy(dict(status))
    new.update(_fresh_canary(status, candidate, spec, now, generation))
    new["observedGeneration"] = generation
    _phase_conditions(new, now, generation)
    return new


# Canary analysis ----------------------------------------------------------------


def analysis_due(status: Mapping[str, Any], spec: PolicySpec, now: datetime) -> bool:
    last = (status.get("analysis") or {}).get("lastAnalysisAt")
    since = seconds_since(last or (status.get("canary") or {}).get("startedAt"), now)
    return since is None or since >= spec.rollout.analysis_interval


def canary_elapsed(status: Mapping[str, Any], now: datetime) -> float:
    return seconds_since((status.get("canary") or {}).get("startedAt"), now) or 0.0


def record_analysis(
    status: Mapping[str, Any],
    figures: CanaryFigures | None,
    decision: Decision,
    now: datetime,
    generation: int,
) -> dict[str, Any]:
    """Return the status with one analysis's figures and its decision."""
    new = copy.deepcopy(dict(status))
    canary = dict(new.get("canary") or {})
    analysis = dict(new.get("analysis") or {})
    analysis.update(
        lastAnalysisAt=format_time(now),
        decision=str(decision.outcome),
        reason=decision.reason,
        message=decision.message[:1024],
    )
    if figures is not None:
        canary.update(
            stableCTR=figures.stable.ctr,
            candidateCTR=figures.candidate.ctr,
            stableSamples=int(figures.stable.recommendations),
            candidateSamples=int(figures.candidate.recommendations),
        )
    if decision.lower_bound is not None:
        analysis["lowerBound"] = round(decision.lower_bound, 6)
        analysis["upperBound"] = round(decision.upper_bound or 0.0, 6)
    new["canary"] = canary
    new["analysis"] = analysis
    if decision.outcome == Outcome.PROMOTE:
        new["phase"] = str(Phase.PROMOTING)
    elif decision.outcome == Outcome.ROLLBACK:
        return roll_back(new, decision, now, generation)
    _phase_conditions(new, now, generation)
    return new


def roll_back(
    status: Mapping[str, Any], decision: Decision, now: datetime, generation: int
) -> dict[str, Any]:
    new = copy.deepcopy(dict(status))
    analysis = dict(new.get("analysis") or {})
    analysis.update(
        decision=str(decision.outcome),
        reason=decision.reason,
        message=decision.message[:1024],
    )
    new["analysis"] = analysis
    new["phase"] = str(Phase.ROLLING_BACK)
    _phase_conditions(new, now, generation)
    return new


def finish_promotion(
    status: Mapping[str, Any], now: datetime, generation: int
) -> dict[str, Any]:
    """Return the status once the target serves the candidate as stable."""
    new = copy.deepcopy(dict(status))
    reason = (new.get("analysis") or {}).get("reason", "NonInferior")
    _append_history(
        new, _history_entry(new.get("candidate"), "Promoted", reason, now, new)
    )
    new.update(
        phase=str(Phase.STABLE),
        current=new.get("candidate"),
        candidate=None,
        lastRoundFinishedAt=format_time(now),
    )
    _phase_conditions(new, now, generation)
    return new


def finish_rollback(
    status: Mapping[str, Any], now: datetime, generation: int
) -> dict[str, Any]:
    """Return the status once the target serves only the current set again."""
    new = copy.deepcopy(dict(status))
    analysis = new.get("analysis") or {}
    reason = f"{analysis.get('reason', 'Rollback')}: {analysis.get('message', '')}"
    _append_history(
        new, _history_entry(new.get("candidate"), "RolledBack", reason, now, new)
    )
    new.update(
        phase=str(Phase.STABLE),
        candidate=None,
        lastRoundFinishedAt=format_time(now),
    )
    _phase_conditions(new, now, generation)
    return new


def mark_invalid(
    status: Mapping[str, Any], message: str, now: datetime, generation: int
) -> dict[str, Any]:
    new = copy.deepcopy(dict(status))
    new.update(phase=str(Phase.FAILED), observedGeneration=generation)
    _phase_conditions(new, now, generation)
    set_condition(new, "Degraded", True, "InvalidSpec", message, now, generation)
    return new


# What the target should serve ---------------------------------------------------


@dataclass(frozen=True)
class TargetState:
    """The sets and the canary share that the target must serve in a phase."""

    stable: HyperparamSet
    candidate: HyperparamSet | None
    canary_percent: int

    def rollout(self) -> Rollout:
        return Rollout(self.stable, self.candidate, self.canary_percent)


def desired_target(status: Mapping[str, Any], spec: PolicySpec) -> TargetState | None:
    """Return what the target should serve now, or None before a current set exists."""
    current = read_set(status.get("current"))
    if current is None:
        return None
    candidate = read_set(status.get("candidate"))
    phase = phase_of(status)
    if phase == Phase.CANARY and candidate is not None:
        percent = int((status.get("analysis") or {}).get("percent") or 0)
        return TargetState(current, candidate, percent or spec.rollout.canary_percent)
    if phase == Phase.PROMOTING and candidate is not None:
        return TargetState(candidate, None, 0)
    return TargetState(current, None, 0)
