"""One reconcile of one HyperparamPolicy: read, decide, act, record.

The kopf timer calls :meth:`Reconciler.reconcile` every few seconds. Each step
reads the policy fresh from the API server and gets the next transition from
:mod:`decisions`. It performs idempotent side effects (create-or-get a Job with a
deterministic name, patch the target only when it differs) and writes the new
status with the resourceVersion it read. A concurrent write therefore makes the
step start over instead of overwriting progress. The status is written before
the side effect it announces, so an operator killed between the two redoes the
side effect and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from adaptrec.hyperparams import HyperparamSet
from adaptrec.operator import analysis, decisions, jobs, targets
from adaptrec.operator.decisions import Phase
from adaptrec.operator.kube import ConflictError, KubeApi, KubeError
from adaptrec.operator.metrics import DECISIONS, ERRORS, RECONCILE_SECONDS, ROUNDS
from adaptrec.operator.policy import (
    DEFAULT_TRAINING_ACCOUNT,
    PolicyError,
    PolicySpec,
    parse_policy_spec,
)

# A step moves the policy one phase. A few steps per tick let a fast round (a
# Job that is already complete) move on without waiting for the next tick.
MAX_STEPS_PER_TICK = 4
MAX_CONFLICT_RETRIES = 5
MISSING_TARGET_DELAY = 30.0
API_ERROR_DELAY = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TargetView:
    """The target's state after a reconcile made it serve the desired sets."""

    ready: bool
    serves_desired: bool
    raw_deployment: bool


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Return the JSON merge patch (RFC 7396) that turns ``old`` into ``new``.

    Keys that ``new`` lacks become null, so the API server deletes them; a plain
    merge of ``new`` would leave them in place.
    """
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        previous = old.get(key)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            nested = merge_patch(previous, value)
            if nested:
                patch[key] = nested
        elif value != previous or key not in old:
            patch[key] = value
    return patch


class Reconciler:
    """Reconciles policies through a :class:`KubeApi`."""

    def __init__(
        self,
        api: KubeApi,
        clock: Callable[[], datetime] = utc_now,
        prometheus_timeout: float = analysis.QUERY_TIMEOUT_SECONDS,
        training_account: str = DEFAULT_TRAINING_ACCOUNT,
    ) -> None:
        self.api = api
        self.training_account = training_account
        self.clock = clock
        self.prometheus_timeout = prometheus_timeout
        self._ctr_checked_at: dict[str, float] = {}

    # Entry points -----------------------------------------------------------------

    def reconcile(self, namespace: str, name: str, logger: logging.Logger) -> None:
        """Move the policy as far as it can go now; retry on write conflicts."""
        started = time.perf_counter()
        try:
            for _ in range(MAX_STEPS_PER_TICK):
                if not self._step_with_retries(namespace, name, logger):
                    break
        except KubeError as error:
            ERRORS.labels(kind="api").inc()
            raise kopf.TemporaryError(
                f"API request failed: {error}; retrying", delay=API_ERROR_DELAY
            ) from error
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)

    def finalize(self, body: Mapping[str, Any], logger: logging.Logger) -> None:
        """Revert the target to the current set and delete the round's Job."""
        metadata = body["metadata"]
        status = body.get("status") or {}
        try:
            spec = self._parse(body)
        except PolicyError:
            logger.info("policy deleted; its spec was invalid, so nothing to revert")
            return
        current = decisions.read_set(status.get("current"))
        if current is not None:
            state = decisions.TargetState(current, None, 0)
            try:
                self._apply_target(spec, state, metadata["name"], logger)
                logger.info(
                    f"policy deleted: target {spec.target.name} reverted to "
                    f"set {current.version}"
                )
            except kopf.TemporaryError:
                logger.warning(
                    f"policy deleted: target {spec.target.name} is gone, "
                    "nothing to revert"
                )
        job_name = status.get("lastJobName")
        if job_name and decisions.phase_of(status) == Phase.TRAINING:
            self.api.delete_job(metadata["namespace"], job_name)
            logger.info(f"policy deleted: tuning Job {job_name} deleted")

    def _parse(self, policy: Mapping[str, Any]) -> PolicySpec:
        return parse_policy_spec(
            policy.get("spec") or {},
            policy["metadata"]["namespace"],
            training_account=self.training_account,
        )

    # Steps ------------------------------------------------------------------------

    def _step_with_retries(
        self, namespace: str, name: str, logger: logging.Logger
    ) -> bool:
        for attempt in range(MAX_CONFLICT_RETRIES):
            policy = self.api.get_policy(namespace, name)
            if policy is None or policy["metadata"].get("deletionTimestamp"):
                return False
            try:
                return self._step(policy, logger)
            except ConflictError:
                ERRORS.labels(kind="conflict").inc()
                logger.debug(
                    f"status write conflicted (attempt {attempt + 1}); rereading"
                )
        raise kopf.TemporaryError(
            f"status writes conflicted {MAX_CONFLICT_RETRIES} times in a row; retrying",
            delay=1.0,
        )

    def _write(self, policy: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        metadata = policy["metadata"]
        patch = merge_patch(policy.get("status") or {}, status)
        self.api.patch_policy_status(
            metadata["namespace"], metadata["name"], patch, metadata["resourceVersion"]
        )

    def _step(self, policy: Mapping[str, Any], logger: logging.Logger) -> bool:
        """Make one transition. Returns True when the status changed."""
        metadata = policy["metadata"]
        generation = int(metadata.get("generation") or 0)
        status = policy.get("status") or {}
        now = self.clock()
        try:
            spec = self._parse(policy)
        except PolicyError as error:
            ERRORS.labels(kind="invalid_spec").inc()
            if (
                decisions.phase_of(status) != Phase.FAILED
                or status.get("observedGeneration") != generation
            ):
                self._write(
                    policy, decisions.mark_invalid(status, str(error), now, generation)
                )
                logger.error(f"invalid spec: {error}; fix the policy to continue")
            return False

        phase = decisions.phase_of(status)
        if phase in (Phase.PENDING, Phase.STABLE, Phase.FAILED):
            return self._step_idle(policy, spec, status, now, generation, logger)
        if phase == Phase.TRAINING:
            return self._step_training(policy, spec, status, now, generation, logger)
        if phase == Phase.CANARY:
            return self._step_canary(policy, spec, status, now, generation, logger)
        return self._step_finish(policy, spec, status, now, generation, logger)

    def _step_idle(self, policy, spec, status, now, generation, logger) -> bool:
        stable_ctr = None
        if decisions.wants_ctr_check(status, spec, now) and self._ctr_check_due(
            policy, spec
        ):
            stable_ctr = self._stable_ctr(spec, status)
        reason = decisions.retune_reason(status, spec, generation, now, stable_ctr)
        if reason is None:
            if decisions.read_set(status.get("current")) is not None:
                self._ensure_target(spec, status, policy, logger)
            return False

        if decisions.read_set(status.get("current"), spec.space) is None:
            current = self._discover_current(spec)
            status = decisions.initial_status(status, current, now, generation)
            logger.info(f"policy accepted: users are served set {current.version}")
        round_number = decisions.next_job_round(status)
        job = jobs.build_job(policy, spec, round_number)
        job_name = job["metadata"]["name"]
        new = decisions.start_round(status, job_name, reason, now, generation)
        self._write(policy, new)
        ROUNDS.labels(reason=reason).inc()
        logger.info(f"round {round_number} started ({reason}): creating Job {job_name}")
        self._ensure_target(spec, new, policy, logger)
        self._create_job(job, spec)
        return True

    def _create_job(self, job: Mapping[str, Any], spec: PolicySpec) -> dict[str, Any]:
        if jobs.is_distributed(spec):
            self.api.create_service(jobs.build_rendezvous_service(job))
        return self.api.create_job(job)

    def _step_training(self, policy, spec, status, now, generation, logger) -> bool:
        namespace = policy["metadata"]["namespace"]
        job_name = status.get("lastJobName")
        job = self.api.get_job(namespace, job_name) if job_name else None
        if job is None:
            # Written to the status but not created: the last operator stopped
            # between the two. The name is deterministic, so this is that Job.
            manifest = jobs.build_job(policy, spec, int(status.get("round") or 1))
            self._create_job(manifest, spec)
            logger.info(f"tuning Job {manifest['metadata']['name']} created")
            return False

        outcome = jobs.job_outcome(job)
        if outcome.state == jobs.JobState.RUNNING:
            return False
        if outcome.state == jobs.JobState.FAILED:
            message = f"tuning Job {job_name} failed ({outcome.reason})"
            if outcome.message:
                message += f": {outcome.message}"
            self._write(
                policy,
                decisions.fail_round(
                    status, f"Job{outcome.reason}", message, now, generation
                ),
            )
            DECISIONS.labels(outcome="TrainingFailed").inc()
            logger.warning(f"{message}; serving set stays as it is")
            return True

        pods = self.api.list_job_pods(namespace, job)
        try:
            result = jobs.parse_result(jobs.result_message(pods), spec.space)
        except jobs.ResultError as error:
            message = f"tuning Job {job_name} completed without a valid result: {error}"
            self._write(
                policy,
                decisions.fail_round(status, "InvalidResult", message, now, generation),
            )
            DECISIONS.labels(outcome="TrainingFailed").inc()
            logger.warning(f"{message}; serving set stays as it is")
            return True

        current = decisions.read_set(status.get("current"))
        if result.hyperparams == current:
            new = decisions.fail_round(
                status,
                "Unchanged",
                f"tuning Job {job_name} chose the current set "
                f"{result.hyperparams.version}",
                now,
                generation,
            )
            decisions.set_condition(
                new, "Degraded", False, "Unchanged", "the current set was kept", now
            )
            new["history"][-1]["decision"] = "Unchanged"
            self._write(policy, new)
            DECISIONS.labels(outcome="Unchanged").inc()
            logger.info(f"round kept set {current.version}: the Job chose it again")
            return True

        new = decisions.start_canary(
            status, result.hyperparams, result.metrics, spec, now, generation
        )
        self._write(policy, new)
        logger.info(
            f"tuning Job {job_name} chose set {result.hyperparams.version} after "
            f"{result.episodes} episodes; canary at {spec.rollout.canary_percent}%"
        )
        self._ensure_target(spec, new, policy, logger)
        return True

    def _step_canary(self, policy, spec, status, now, generation, logger) -> bool:
        restarted = decisions.restart_canary_if_spec_changed(
            status, spec, now, generation
        )
        if restarted is not None:
            self._write(policy, restarted)
            logger.info("spec changed during the canary: analysis starts over")
            self._ensure_target(spec, restarted, policy, logger)
            return True

        view = self._ensure_target(spec, status, policy, logger)
        if view.raw_deployment and spec.rollout.strategy == "kserve":
            degraded = decisions.condition_of(status, "Degraded") or {}
            if degraded.get("reason") != "RawDeployment":
                new = dict(status)
                decisions.set_condition(
                    new,
                    "Degraded",
                    True,
                    "RawDeployment",
                    "the InferenceService runs in RawDeployment mode, where KServe "
                    "ignores canaryTrafficPercent; use Serverless mode or the "
                    "userHash strategy",
                    now,
                    generation,
                )
                self._write(policy, new)
                logger.warning(
                    "InferenceService is in RawDeployment mode: KServe ignores "
                    "canaryTrafficPercent, so the canary gets no traffic of its own"
                )
                return True
        if not decisions.analysis_due(status, spec, now):
            return False

        elapsed = decisions.canary_elapsed(status, now)
        current = decisions.read_set(status.get("current"))
        candidate = decisions.read_set(status.get("candidate"))
        assert current is not None and candidate is not None
        client = analysis.PrometheusClient(
            spec.rollout.prometheus_url, self.prometheus_timeout
        )
        figures = analysis.query_figures(
            client,
            spec.rollout,
            spec.target.model_name,
            current.version,
            candidate.version,
            max(1.0, elapsed),
        )
        decision = analysis.decide_canary(figures, spec.rollout, elapsed, view.ready)
        new = decisions.record_analysis(status, figures, decision, now, generation)
        self._write(policy, new)
        DECISIONS.labels(outcome=str(decision.outcome)).inc()
        text = f"canary {candidate.version}: {decision.outcome} ({decision.reason})"
        if decision.outcome == analysis.Outcome.ROLLBACK:
            logger.warning(f"{text}: {decision.message}")
        else:
            logger.info(f"{text}: {decision.message}")
        if decisions.phase_of(new) != Phase.CANARY:
            self._ensure_target(spec, new, policy, logger)
        return True

    def _step_finish(self, policy, spec, status, now, generation, logger) -> bool:
        """Confirm a promotion or rollback by reading the target back."""
        view = self._ensure_target(spec, status, policy, logger)
        if not view.serves_desired:
            return False
        phase = decisions.phase_of(status)
        if phase == Phase.PROMOTING:
            new = decisions.finish_promotion(status, now, generation)
            self._write(policy, new)
            logger.info(
                f"promoted set {new['current']['version']}: the target's stable "
                "revision serves it"
            )
        else:
            new = decisions.finish_rollback(status, now, generation)
            self._write(policy, new)
            logger.info(
                f"rolled back: the target serves set {new['current']['version']} only"
            )
        return True

    # Targets ----------------------------------------------------------------------

    def _get_isvc(self, spec: PolicySpec) -> dict[str, Any]:
        isvc = self.api.get_isvc(spec.target.namespace, spec.target.name)
        if isvc is None:
            ERRORS.labels(kind="missing_dependency").inc()
            raise kopf.TemporaryError(
                f"InferenceService {spec.target.namespace}/{spec.target.name} not "
                "found; create it or fix spec.target.inferenceService",
                delay=MISSING_TARGET_DELAY,
            )
        return isvc

    def _discover_current(self, spec: PolicySpec) -> HyperparamSet:
        """Return the set the target already serves if valid, else the initial set."""
        if spec.rollout.strategy == "kserve":
            found = targets.read_isvc_set(self._get_isvc(spec), spec.space)
        else:
            configmap = self.api.get_configmap(
                spec.target.namespace, str(spec.rollout.config_map)
            )
            rollout = targets.read_configmap_rollout(
                configmap, spec.rollout.config_map_key, spec.space
            )
            found = None if rollout is None else rollout.stable
        return found or spec.space.initial()

    def _ensure_target(self, spec, status, policy, logger) -> TargetView:
        state = decisions.desired_target(status, spec)
        if state is None:
            return TargetView(False, False, False)
        return self._apply_target(spec, state, policy["metadata"]["name"], logger)

    def _apply_target(
        self,
        spec: PolicySpec,
        state: decisions.TargetState,
        policy_name: str,
        logger: logging.Logger,
    ) -> TargetView:
        """Make the target serve ``state`` if it does not already."""
        isvc = self._get_isvc(spec)
        namespace = spec.target.namespace
        describe = f"stable {state.stable.version}"
        if state.candidate is not None:
            describe += (
                f", candidate {state.candidate.version} at {state.canary_percent}%"
            )
        if spec.rollout.strategy == "kserve":
            served = state.candidate or state.stable
            percent = state.canary_percent if state.candidate is not None else None
            patch = targets.isvc_patch(isvc, served, percent)
            if patch is not None:
                isvc = self.api.patch_isvc(namespace, spec.target.name, patch)
                logger.info(
                    f"InferenceService {spec.target.name} now serves {describe}"
                )
            serves = (
                targets.read_isvc_set(isvc) == served
                and targets.read_canary_percent(isvc) == percent
            )
            if state.candidate is None:
                serves = targets.isvc_serves_stable(isvc, state.stable)
            return TargetView(
                targets.isvc_ready(isvc), serves, targets.is_raw_deployment(isvc)
            )

        name = str(spec.rollout.config_map)
        key = spec.rollout.config_map_key
        rollout = state.rollout()
        configmap = self.api.get_configmap(namespace, name)
        if configmap is None:
            configmap = self.api.create_configmap(
                targets.build_rollout_configmap(
                    name, namespace, key, rollout, policy_name
                )
            )
            logger.info(f"rollout ConfigMap {name} created: {describe}")
        else:
            patch = targets.configmap_patch(configmap, key, rollout)
            if patch is not None:
                configmap = self.api.patch_configmap(namespace, name, patch)
                logger.info(f"rollout ConfigMap {name} now contains {describe}")
        serves = targets.read_configmap_rollout(configmap, key) == rollout
        return TargetView(targets.isvc_ready(isvc), serves, False)

    def _ctr_check_due(self, policy: Mapping[str, Any], spec: PolicySpec) -> bool:
        """Rate-limit the CTR trigger's query to one per analysis interval."""
        uid = policy["metadata"]["uid"]
        last = self._ctr_checked_at.get(uid)
        now = time.monotonic()
        if last is not None and now - last < spec.rollout.analysis_interval:
            return False
        self._ctr_checked_at[uid] = now
        return True

    def _stable_ctr(self, spec: PolicySpec, status: Mapping[str, Any]) -> float | None:
        current = decisions.read_set(status.get("current"))
        if current is None:
            return None
        client = analysis.PrometheusClient(
            spec.rollout.prometheus_url, self.prometheus_timeout
        )
        return analysis.query_ctr(
            client,
            spec.rollout,
            spec.target.model_name,
            current.version,
            spec.rollout.analysis_interval,
        )
