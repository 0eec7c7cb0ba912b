"""The operator on a real control plane: rounds, decisions and faults.

Each test installs the chart in a fresh namespace and runs ``adaptrec operator``
as a subprocess with the chart's operator ServiceAccount token, so the operator
has exactly the chart's RBAC. The test plays the node's part. It reports the
training Pod's outcome through the Pod status, as a kubelet would, and serves
simulated users whose clicks a real Prometheus scrapes. The training result is
prepared by the test (the JSON that ``adaptrec train`` writes), because a real
tuning round takes a minute. test_end_to_end.py runs the real trainer, and
test_train.py checks that its output passes the operator's checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.rollout import Rollout
from adaptrec.testing.controlplane import ControlPlane, ControlPlaneError
from tests.operator.cluster import (
    ClickExporter,
    Kubelet,
    OperatorProcess,
    Traffic,
    apply,
    create_inference_service,
    get_json,
    get_policy,
    install_chart,
    policy_manifest,
    read_rollout,
    restart_apiserver,
    set_inference_service_ready,
    token_kubeconfig,
    wait_for,
)
from tests.support.prometheus import PrometheusServer, start_prometheus, stop_prometheus

pytestmark = pytest.mark.cluster

SPACE = HyperparamSpace.from_yaml()
STABLE = SPACE.initial()
CANDIDATE = HyperparamSet({**STABLE.values_dict, "alpha": 0.7, "w_kg": 0.1})


def training_result(hyperparams: HyperparamSet = CANDIDATE) -> str:
    """The JSON `adaptrec train` writes to the termination log."""
    return json.dumps(
        {
            "hyperparams": hyperparams.to_json_dict(),
            "metrics": {"greedy_ctr": 0.21, "env_steps": 400.0},
            "episodes": 20,
        }
    )


@dataclass
class Harness:
    plane: ControlPlane
    namespace: str
    kubelet: Kubelet
    exporter: ClickExporter
    prometheus: PrometheusServer
    operator: OperatorProcess

    def apply_policy(self, **rollout) -> dict:
        manifest = policy_manifest(self.namespace, self.prometheus.url, **rollout)
        apply(self.plane, manifest)
        return manifest

    def policy(self) -> dict:
        return get_policy(self.plane, self.namespace)

    def status(self) -> dict:
        return self.policy().get("status") or {}

    def wait_for_job(self, round_number: int = 1) -> str:
        def probe():
            status = self.status()
            if status.get("round") == round_number and status.get("lastJobName"):
                return status["lastJobName"]
            return None

        name = self.wait(f"round {round_number} to start", probe)
        self.wait(
            f"Job {name}",
            lambda: (
                self.plane.kubectl(
                    "get", "job", name, "-n", self.namespace, check=False
                ).returncode
                == 0
            ),
        )
        return name

    def finish_training(self, message: str | None = None, exit_code: int = 0) -> str:
        job = self.wait_for_job()
        pod = self.kubelet.pending_pod(job)
        if message is None:
            message = training_result()
        self.kubelet.finish(pod, exit_code, message)
        return job

    def wait(self, description: str, probe, timeout_s: float = 90.0):
        """Wait for ``probe``; a timeout shows the status and the operator's log."""
        try:
            return wait_for(description, probe, timeout_s)
        except ControlPlaneError as error:
            raise AssertionError(
                f"{error}; status: {json.dumps(self.status(), indent=1)}\n"
                f"operator log:\n{self.operator.log_tail()}"
            ) from None

    def wait_phase(self, *phases: str, timeout_s: float = 90.0) -> dict:
        """Wait for the policy to reach one of ``phases``."""

        def probe():
            policy = self.policy()
            return policy if policy.get("status", {}).get("phase") in phases else None

        return self.wait(f"phase in {phases}", probe, timeout_s)

    def rollout(self) -> Rollout | None:
        return read_rollout(self.plane, self.namespace)

    def traffic(self, stable_rate: float, candidate_rate: float) -> Traffic:
        def rates(rollout: Rollout) -> dict[str, float]:
            result = {rollout.stable.version: stable_rate}
            if rollout.candidate is not None:
                result[rollout.candidate.version] = candidate_rate
            return result

        return Traffic(self.plane, self.namespace, self.exporter, rates)


@pytest.fixture
def harness(crds: ControlPlane, tmp_path: Path) -> Iterator[Harness]:
    plane = crds
    namespace = plane.create_namespace("op")
    install_chart(plane, namespace)
    create_inference_service(plane, namespace)
    exporter = ClickExporter()
    (tmp_path / "prometheus").mkdir()
    prometheus = start_prometheus(tmp_path / "prometheus", [exporter.target])
    kubeconfig = token_kubeconfig(plane, namespace, tmp_path / "operator.kubeconfig")
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log").start()
    try:
        yield Harness(
            plane, namespace, Kubelet(plane, namespace), exporter, prometheus, operator
        )
    finally:
        operator.stop()
        stop_prometheus(prometheus)
        exporter.close()
        plane.helm("uninstall", "adaptrec", "--namespace", namespace, check=False)
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_better_candidate_promoted(harness):
    harness.apply_policy()
    job = harness.finish_training()

    canary = harness.wait_phase("Canary")
    assert canary["status"]["candidate"]["version"] == CANDIDATE.version
    rollout = harness.rollout()
    assert rollout.candidate == CANDIDATE
    assert rollout.canary_percent == 50

    with harness.traffic(stable_rate=0.1, candidate_rate=0.4):
        done = harness.wait_phase("Stable", timeout_s=120)
    status = done["status"]
    assert status["current"]["version"] == CANDIDATE.version
    assert status.get("candidate") is None
    assert status["history"][-1]["decision"] == "Promoted"
    assert status["lastJobName"] == job
    assert status["canary"]["candidateCTR"] > status["canary"]["stableCTR"]
    final = harness.rollout()
    assert final.stable == CANDIDATE
    assert final.candidate is None
    events = get_json(
        harness.plane,
        "events",
        "-n",
        harness.namespace,
        "--field-selector",
        "involvedObject.kind=HyperparamPolicy",
    )["items"]
    messages = " ".join(event.get("message", "") for event in events)
    assert "promoted" in messages


def _history(status: dict) -> list[str]:
    return [entry["decision"] for entry in status.get("history") or []]


def _condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_worse_candidate_rolled_back(harness):
    harness.apply_policy()
    harness.finish_training()
    harness.wait_phase("Canary")

    with harness.traffic(stable_rate=0.4, candidate_rate=0.1):
        done = harness.wait_phase("Stable", timeout_s=120)
    status = done["status"]
    assert status["current"]["version"] == STABLE.version
    assert _history(status) == ["RolledBack"]
    assert "Regression" in status["history"][-1]["reason"]
    final = harness.rollout()
    assert final.stable == STABLE
    assert final.candidate is None


def test_no_data_holds_then_rolls_back(harness):
    harness.apply_policy(deadline="15s")
    harness.finish_training()
    harness.wait_phase("Canary")

    # No users are served, so Prometheus has no series for either version.
    held = wait_for(
        "a Hold decision",
        lambda: (harness.status().get("analysis") or {}).get("decision") == "Hold",
    )
    assert held
    assert harness.status()["phase"] == "Canary"
    done = harness.wait_phase("Stable", timeout_s=60)
    status = done["status"]
    assert _history(status) == ["RolledBack"]
    assert status["history"][-1]["reason"].startswith("NoData")
    assert status["current"]["version"] == STABLE.version


def test_prometheus_down_never_promotes(harness):
    harness.apply_policy(deadline="20s")
    harness.finish_training()
    harness.wait_phase("Canary")
    stop_prometheus(harness.prometheus)

    with harness.traffic(stable_rate=0.1, candidate_rate=0.5):
        done = harness.wait_phase("Stable", timeout_s=90)
    status = done["status"]
    assert _history(status) == ["RolledBack"]
    assert status["history"][-1]["reason"].startswith("NoData")
    assert harness.rollout().stable == STABLE


def test_unready_candidate_never_promoted(harness):
    set_inference_service_ready(harness.plane, harness.namespace, False)
    harness.apply_policy(deadline="20s")
    harness.finish_training()
    harness.wait_phase("Canary")

    with harness.traffic(stable_rate=0.1, candidate_rate=0.5):
        held = wait_for(
            "a CandidateNotReady hold",
            lambda: (
                (harness.status().get("analysis") or {}).get("reason")
                == "CandidateNotReady"
            ),
        )
        assert held
        done = harness.wait_phase("Stable", timeout_s=90)
    status = done["status"]
    assert _history(status) == ["RolledBack"]
    assert status["history"][-1]["reason"].startswith("CandidateNotReady")
    assert status["current"]["version"] == STABLE.version


def test_failed_job_keeps_current(harness):
    harness.apply_policy()
    job = harness.wait_for_job()
    # backoffLimit is 1 in the example: two failed Pods fail the Job.
    for _ in range(2):
        pod = harness.kubelet.pending_pod(job)
        harness.kubelet.finish(pod, 1, "Traceback (most recent call last): ...")
    done = harness.wait_phase("Stable")
    status = done["status"]
    degraded = _condition(status, "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "JobBackoffLimitExceeded"
    assert _history(status) == ["Failed"]
    assert status["current"]["version"] == STABLE.version
    assert harness.rollout().candidate is None


def test_eviction_not_counted_against_backoff(harness):
    manifest = policy_manifest(harness.namespace, harness.prometheus.url)
    manifest["spec"]["training"]["backoffLimit"] = 0
    apply(harness.plane, manifest)
    job = harness.wait_for_job()
    evicted = harness.kubelet.pending_pod(job)
    harness.kubelet.finish(evicted, 137, disruption=True)

    # The Job controller replaces the evicted Pod instead of failing the Job.
    def replacement():
        for pod in harness.kubelet.job_pods(job):
            if pod["metadata"]["name"] != evicted["metadata"]["name"]:
                return pod
        return None

    pod = wait_for("a replacement Pod", replacement, 60)
    job_status = get_json(harness.plane, "job", job, "-n", harness.namespace)
    conditions = job_status.get("status", {}).get("conditions") or []
    assert not any(c["type"] == "Failed" and c["status"] == "True" for c in conditions)
    assert harness.status()["phase"] == "Training"
    harness.kubelet.finish(pod, 0, training_result())
    canary = harness.wait_phase("Canary")
    assert canary["status"]["candidate"]["version"] == CANDIDATE.version


@pytest.mark.parametrize(
    ("message", "reason_text"),
    [
        ("", "without a result"),
        (
            json.dumps(
                {"hyperparams": {"values": {**STABLE.values_dict, "alpha": 3.0}}}
            ),
            "alpha",
        ),
    ],
    ids=["no-result", "out-of-bounds"],
)
def test_completed_job_without_valid_result_fails_round(harness, message, reason_text):
    harness.apply_policy()
    harness.finish_training(message=message)
    done = harness.wait_phase("Stable")
    status = done["status"]
    degraded = _condition(status, "Degraded")
    assert degraded["reason"] == "InvalidResult"
    assert reason_text in degraded["message"]
    assert _history(status) == ["Failed"]
    assert harness.rollout().candidate is None


def test_policy_deleted_mid_canary_reverts_target(harness):
    harness.apply_policy()
    job = harness.finish_training()
    harness.wait_phase("Canary")
    assert harness.rollout().candidate == CANDIDATE

    harness.plane.kubectl(
        "delete", "hyperparampolicy", "movie-recommender", "-n", harness.namespace
    )
    # The delete returns once the finalizer is gone: the handler ran.
    final = harness.rollout()
    assert final.stable == STABLE
    assert final.candidate is None
    wait_for(
        f"Job {job} to be garbage-collected",
        lambda: (
            harness.plane.kubectl(
                "get", "job", job, "-n", harness.namespace, check=False
            ).returncode
            != 0
        ),
        60,
    )


def test_policy_deleted_during_training_removes_job(harness):
    harness.apply_policy()
    job = harness.wait_for_job()
    harness.plane.kubectl(
        "delete", "hyperparampolicy", "movie-recommender", "-n", harness.namespace
    )
    wait_for(
        f"Job {job} to be deleted",
        lambda: (
            harness.plane.kubectl(
                "get", "job", job, "-n", harness.namespace, check=False
            ).returncode
            != 0
        ),
        60,
    )
    assert harness.rollout().candidate is None


def test_spec_change_mid_canary_restarts_analysis(harness):
    harness.apply_policy(deadline="5m", minSamples=100000)
    harness.finish_training()
    before = harness.wait_phase("Canary")["status"]
    started = before["canary"]["startedAt"]

    harness.plane.kubectl(
        "patch",
        "hyperparampolicy",
        "movie-recommender",
        "-n",
        harness.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"rollout": {"canaryPercent": 20}}}),
    )

    def restarted():
        status = harness.status()
        analysis = status.get("analysis") or {}
        return status if analysis.get("percent") == 20 else None

    status = wait_for("the analysis to restart", restarted, 60)
    assert status["phase"] == "Canary"
    assert status["canary"]["startedAt"] >= started
    assert status["analysis"]["observedGeneration"] == 2
    wait_for(
        "the ConfigMap to carry 20%",
        lambda: harness.rollout().canary_percent == 20,
        30,
    )


def test_operator_killed_mid_rollout_resumes(harness):
    harness.apply_policy()
    harness.finish_training()
    harness.wait_phase("Canary")
    harness.operator.kill()

    harness.operator.start()
    with harness.traffic(stable_rate=0.1, candidate_rate=0.4):
        done = harness.wait_phase("Stable", timeout_s=120)
    status = done["status"]
    assert _history(status) == ["Promoted"]
    assert status["round"] == 1
    jobs = get_json(
        harness.plane,
        "jobs",
        "-n",
        harness.namespace,
        "-l",
        "adaptrec.io/policy=movie-recommender",
    )["items"]
    assert len(jobs) == 1


def test_apiserver_restart_during_round(harness):
    harness.apply_policy()
    job = harness.wait_for_job()
    restart_apiserver(harness.plane)
    pod = harness.kubelet.pending_pod(job, timeout_s=120)
    harness.kubelet.finish(pod, 0, training_result())
    with harness.traffic(stable_rate=0.1, candidate_rate=0.4):
        done = harness.wait_phase("Stable", timeout_s=180)
    assert _history(done["status"]) == ["Promoted"]
    jobs = get_json(
        harness.plane,
        "jobs",
        "-n",
        harness.namespace,
        "-l",
        "adaptrec.io/policy=movie-recommender",
    )["items"]
    assert len(jobs) == 1


def test_kserve_strategy_patches_inference_service(harness):
    harness.plane.kubectl(
        "annotate",
        "inferenceservice",
        "movie-recommender",
        "-n",
        harness.namespace,
        "serving.kserve.io/deploymentMode=RawDeployment",
    )
    manifest = policy_manifest(harness.namespace, harness.prometheus.url)
    manifest["spec"]["rollout"]["strategy"] = "kserve"
    apply(harness.plane, manifest)
    harness.finish_training()
    harness.wait_phase("Canary")

    def degraded():
        status = harness.status()
        condition = next(
            (c for c in status.get("conditions", []) if c["type"] == "Degraded"), {}
        )
        return condition if condition.get("reason") == "RawDeployment" else None

    condition = wait_for("the RawDeployment condition", degraded, 30)
    assert condition["status"] == "True"
    assert "canaryTrafficPercent" in condition["message"]
    isvc = get_json(
        harness.plane, "inferenceservice", "movie-recommender", "-n", harness.namespace
    )
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 50
    env = {e["name"]: e["value"] for e in predictor["model"]["env"]}
    assert json.loads(env["ADAPTREC_HYPERPARAMS"]) == CANDIDATE.to_json_dict()
    assert predictor["model"]["storageUri"] == "pvc://models/movie-recommender"

    harness.plane.kubectl(
        "delete", "hyperparampolicy", "movie-recommender", "-n", harness.namespace
    )
    isvc = get_json(
        harness.plane, "inferenceservice", "movie-recommender", "-n", harness.namespace
    )
    predictor = isvc["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    env = {e["name"]: e["value"] for e in predictor["model"]["env"]}
    assert json.loads(env["ADAPTREC_HYPERPARAMS"]) == STABLE.to_json_dict()


def test_write_conflicts_are_retried(crds, namespace):
    """A real 409: another client writes the policy between the operator's read
    and its status write, and the step is redone from a fresh read."""
    import logging

    from adaptrec.operator.kube import KubeApi, load_configuration
    from adaptrec.operator.metrics import ERRORS
    from adaptrec.operator.reconcile import Reconciler

    plane = crds
    create_inference_service(plane, namespace)
    manifest = policy_manifest(namespace, "http://127.0.0.1:9")
    apply(plane, manifest)

    class InterferingApi(KubeApi):
        interfered = 0

        def get_policy(self, namespace, name):
            policy = super().get_policy(namespace, name)
            if self.interfered < 2:
                self.interfered += 1
                plane.kubectl(
                    "annotate",
                    "hyperparampolicy",
                    name,
                    "-n",
                    namespace,
                    f"test/interference={self.interfered}",
                    "--overwrite",
                )
            return policy

    api = InterferingApi(load_configuration(str(plane.kubeconfig)))
    conflicts = ERRORS.labels(kind="conflict")._value.get()
    try:
        Reconciler(api).reconcile(namespace, "movie-recommender", logging.getLogger())
    finally:
        api.close()
    assert ERRORS.labels(kind="conflict")._value.get() == conflicts + 2
    status = get_policy(plane, namespace)["status"]
    assert status["phase"] == "Training"
    assert status["round"] == 1
    jobs = get_json(plane, "jobs", "-n", namespace)["items"]
    assert [job["metadata"]["name"] for job in jobs] == [status["lastJobName"]]


def test_schedule_starts_next_round(harness):
    manifest = policy_manifest(harness.namespace, harness.prometheus.url)
    manifest["spec"]["schedule"] = {"interval": "5s"}
    apply(harness.plane, manifest)
    harness.finish_training(message="")
    harness.wait_phase("Stable")

    job = harness.wait_for_job(round_number=2)
    status = harness.status()
    assert status["roundReason"] == "Schedule"
    assert job.endswith("-r2-" + harness.policy()["metadata"]["uid"][:8])


def test_low_ctr_starts_next_round(harness):
    manifest = policy_manifest(
        harness.namespace, harness.prometheus.url, analysisInterval="4s", deadline="8s"
    )
    manifest["spec"]["schedule"] = {"ctrThreshold": 0.5}
    apply(harness.plane, manifest)
    harness.finish_training(message="")
    harness.wait_phase("Stable")

    # Only the stable set serves, at a click-through well below the threshold.
    with harness.traffic(stable_rate=0.1, candidate_rate=0.0):
        harness.wait_for_job(round_number=2)
    assert harness.status()["roundReason"] == "CTRBelowThreshold"
