"""The policy's state machine, driven through whole rounds without a cluster."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from adaptrec.operator import decisions
from adaptrec.operator.analysis import CanaryFigures, Decision, Outcome, VersionCounts
from adaptrec.operator.decisions import Phase

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def sets(spec):
    stable = spec.space.initial()
    candidate = spec.space.validate({**stable.values_dict, "alpha": 0.7})
    return stable, candidate


def _training(spec, stable, generation=1):
    status = decisions.initial_status({}, stable, T0, generation)
    return decisions.start_round(status, "job-r1", "NewPolicy", T0, generation)


def _canary(spec, sets, generation=1):
    stable, candidate = sets
    status = _training(spec, stable, generation)
    return decisions.start_canary(status, candidate, {"ndcg@10": 0.3}, spec, T0, 1)


def _conditions(status):
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_new_policy_starts_round(spec):
    assert decisions.retune_reason({}, spec, 1, T0) == "NewPolicy"


def test_round_start_records_job(spec, sets):
    status = _training(spec, sets[0])
    assert status["phase"] == "Training"
    assert status["round"] == 1
    assert status["lastJobName"] == "job-r1"
    assert status["observedGeneration"] == 1
    assert _conditions(status) == {
        "Ready": "True",
        "Training": "True",
        "Analyzing": "False",
    }
    assert decisions.retune_reason(status, spec, 1, T0) is None


def test_canary_target_splits_users(spec, sets):
    stable, candidate = sets
    status = _canary(spec, sets)
    target = decisions.desired_target(status, spec)
    assert target.stable == stable
    assert target.candidate == candidate
    assert target.canary_percent == spec.rollout.canary_percent
    assert _conditions(status)["Analyzing"] == "True"


def test_promotion_moves_candidate_to_current(spec, sets):
    stable, candidate = sets
    status = _canary(spec, sets)
    figures = CanaryFigures(VersionCounts(10, 2000), VersionCounts(90, 2000), 60)
    decision = Decision(Outcome.PROMOTE, "NonInferior", "better", 0.02, 0.05)
    later = T0 + timedelta(minutes=5)
    promoting = decisions.record_analysis(status, figures, decision, later, 1)
    assert promoting["phase"] == "Promoting"
    assert promoting["canary"]["candidateCTR"] == pytest.approx(0.045)
    assert promoting["canary"]["candidateSamples"] == 2000
    target = decisions.desired_target(promoting, spec)
    assert target.stable == candidate
    assert target.candidate is None
    done = decisions.finish_promotion(promoting, later, 1)
    assert done["phase"] == "Stable"
    assert done["current"] == candidate.to_json_dict()
    assert done["candidate"] is None
    assert done["history"][-1]["decision"] == "Promoted"
    assert done["history"][-1]["version"] == candidate.version


def test_rollback_keeps_current(spec, sets):
    stable, candidate = sets
    status = _canary(spec, sets)
    decision = Decision(Outcome.ROLLBACK, "Regression", "worse", -0.1, -0.02)
    rolling = decisions.record_analysis(status, None, decision, T0, 1)
    assert rolling["phase"] == "RollingBack"
    assert decisions.desired_target(rolling, spec).candidate is None
    done = decisions.finish_rollback(rolling, T0, 1)
    assert done["phase"] == "Stable"
    assert done["current"] == stable.to_json_dict()
    assert done["history"][-1]["decision"] == "RolledBack"
    assert done["history"][-1]["version"] == candidate.version


def test_hold_and_extend_stay_in_canary(spec, sets):
    status = _canary(spec, sets)
    for outcome in (Outcome.HOLD, Outcome.EXTEND):
        decision = Decision(outcome, "X", "m")
        new = decisions.record_analysis(status, None, decision, T0, 1)
        assert new["phase"] == "Canary"
        assert new["analysis"]["decision"] == str(outcome)


def test_failed_round_marks_degraded(spec, sets):
    status = _training(spec, sets[0])
    failed = decisions.fail_round(status, "JobBackoffLimitExceeded", "boom", T0, 1)
    assert failed["phase"] == "Stable"
    conditions = {c["type"]: c for c in failed["conditions"]}
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Degraded"]["reason"] == "JobBackoffLimitExceeded"
    assert failed["history"][-1]["decision"] == "Failed"
    assert failed["current"] == sets[0].to_json_dict()


def test_history_is_bounded(spec, sets):
    status = _training(spec, sets[0])
    for _ in range(decisions.HISTORY_LIMIT + 5):
        status = decisions.fail_round(status, "X", "y", T0, 1)
    assert len(status["history"]) == decisions.HISTORY_LIMIT


def test_spec_change_mid_canary_restarts_analysis(spec, sets):
    status = _canary(spec, sets)
    status["analysis"]["lastAnalysisAt"] = decisions.format_time(T0)
    status["canary"]["candidateSamples"] = 500
    changed = dataclasses.replace(
        spec, rollout=dataclasses.replace(spec.rollout, canary_percent=30)
    )
    later = T0 + timedelta(minutes=7)
    assert decisions.restart_canary_if_spec_changed(status, changed, later, 1) is None
    restarted = decisions.restart_canary_if_spec_changed(status, changed, later, 2)
    assert restarted["phase"] == "Canary"
    assert restarted["canary"]["startedAt"] == decisions.format_time(later)
    assert restarted["analysis"]["percent"] == 30
    assert "lastAnalysisAt" not in restarted["analysis"]
    assert "candidateSamples" not in restarted["canary"]
    assert restarted["observedGeneration"] == 2


def test_spec_change_rejecting_candidate_rolls_back(spec, sets):
    from adaptrec.hyperparams import HyperparamSpace

    status = _canary(spec, sets)
    entries = spec.space.to_dicts()
    entries[0].update(max=0.6)
    narrower = dataclasses.replace(spec, space=HyperparamSpace.from_dicts(entries))
    new = decisions.restart_canary_if_spec_changed(status, narrower, T0, 2)
    assert new["phase"] == "RollingBack"
    assert new["analysis"]["reason"] == "OutOfBounds"


def test_analysis_waits_for_interval(spec, sets):
    status = _canary(spec, sets)
    interval = spec.rollout.analysis_interval
    assert not decisions.analysis_due(status, spec, T0 + timedelta(seconds=1))
    assert decisions.analysis_due(status, spec, T0 + timedelta(seconds=interval))


def test_schedule_starts_next_round(spec, sets):
    done = decisions.fail_round(_training(spec, sets[0]), "X", "y", T0, 1)
    interval = spec.schedule.interval
    assert decisions.retune_reason(done, spec, 1, T0 + timedelta(seconds=10)) is None
    later = T0 + timedelta(seconds=interval)
    assert decisions.retune_reason(done, spec, 1, later) == "Schedule"


def test_spec_change_starts_round_when_idle(spec, sets):
    done = decisions.fail_round(_training(spec, sets[0]), "X", "y", T0, 1)
    assert decisions.retune_reason(done, spec, 2, T0) == "SpecChanged"


def test_low_ctr_starts_round_after_cooldown(spec, sets):
    done = decisions.fail_round(_training(spec, sets[0]), "X", "y", T0, 1)
    threshold = spec.schedule.ctr_threshold
    soon = T0 + timedelta(seconds=60)
    after = T0 + timedelta(seconds=spec.rollout.deadline)
    assert decisions.retune_reason(done, spec, 1, soon, threshold / 2) is None
    assert not decisions.wants_ctr_check(done, spec, soon)
    assert decisions.wants_ctr_check(done, spec, after)
    assert (
        decisions.retune_reason(done, spec, 1, after, threshold / 2)
        == "CTRBelowThreshold"
    )
    assert decisions.retune_reason(done, spec, 1, after, threshold * 2) is None
    assert decisions.retune_reason(done, spec, 1, after, None) is None


def test_invalid_spec_fails_until_changed(spec, sets):
    failed = decisions.mark_invalid({}, "spec.rollout.strategy must be ...", T0, 3)
    assert failed["phase"] == "Failed"
    assert _conditions(failed)["Ready"] == "False"
    assert _conditions(failed)["Degraded"] == "True"
    assert decisions.retune_reason(failed, spec, 3, T0) is None
    assert decisions.retune_reason(failed, spec, 4, T0) == "SpecChanged"


def test_condition_time_moves_only_on_change():
    status = {}
    decisions.set_condition(status, "Ready", True, "A", "a", T0)
    later = T0 + timedelta(hours=1)
    decisions.set_condition(status, "Ready", True, "B", "b", later)
    (ready,) = status["conditions"]
    assert ready["lastTransitionTime"] == decisions.format_time(T0)
    assert ready["reason"] == "B"
    decisions.set_condition(status, "Ready", False, "C", "c", later)
    assert status["conditions"][0]["lastTransitionTime"] == decisions.format_time(later)


def test_stable_target_before_any_round(spec, sets):
    status = decisions.initial_status({}, sets[0], T0, 1)
    target = decisions.desired_target(status, spec)
    assert target.rollout().to_json_dict()["candidate"] is None
    assert decisions.desired_target({}, spec) is None
    assert decisions.phase_of({"phase": "Bogus"}) == Phase.PENDING
