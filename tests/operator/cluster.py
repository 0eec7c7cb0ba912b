"""Helpers for the operator's cluster tests: the chart, the operator process, and
the parts of a node that the local control plane lacks.

The plane has no kubelet, so :class:`Kubelet` reports a Pod's outcome by writing
its status subresource, as a kubelet would. The Job controller in
kube-controller-manager then sets the Job's conditions from it. The model
server's counters come from :class:`ClickExporter` or from real ``adaptrec
serve`` processes, scraped by a real Prometheus.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from adaptrec.rollout import Rollout
from adaptrec.testing.controlplane import REPO_ROOT, ControlPlane, wait_until
from tests.support.processes import stop_process
from tests.support.prometheus import free_port

CHART = REPO_ROOT / "charts" / "adaptrec"
EXAMPLE_POLICY = REPO_ROOT / "examples" / "policy.yaml"
RELEASE = "adaptrec"
OPERATOR_ACCOUNT = f"{RELEASE}-operator"
TRAINING_ACCOUNT = f"{RELEASE}-training"
TARGET = "movie-recommender"
CONFIG_MAP = "movie-recommender-rollout"
CONFIG_KEY = "rollout.json"


# Objects ------------------------------------------------------------------------


def get_json(plane: ControlPlane, *args: str) -> dict[str, Any]:
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def get_policy(plane: ControlPlane, namespace: str, name: str = TARGET) -> dict:
    return get_json(plane, "hyperparampolicy", name, "-n", namespace)


def wait_for(
    description: str,
    probe: Callable[[], Any],
    timeout_s: float = 90.0,
    interval_s: float = 0.5,
) -> Any:
    """Poll ``probe`` until it returns a truthy value, and return that value."""
    result: list[Any] = []

    def ready() -> bool:
        value = probe()
        if value:
            result.append(value)
        return bool(value)

    wait_until(ready, timeout_s, description, interval_s=interval_s)
    return result[0]


def wait_for_phase(
    plane: ControlPlane, namespace: str, phases: set[str], timeout_s: float = 90.0
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        policy = get_policy(plane, namespace)
        phase = (policy.get("status") or {}).get("phase")
        return policy if phase in phases else None

    return wait_for(f"policy phase in {sorted(phases)}", probe, timeout_s)


def policy_manifest(namespace: str, prometheus_url: str, **rollout: Any) -> dict:
    """Return examples/policy.yaml with test-sized rollout settings."""
    policy = yaml.safe_load(EXAMPLE_POLICY.read_text())
    policy["metadata"]["namespace"] = namespace
    settings = {
        "canaryPercent": 50,
        "analysisInterval": "2s",
        "minSamples": 150,
        "deadline": "60s",
        "maxRegression": 0.0,
        "confidence": 0.95,
    }
    settings.update(rollout)
    policy["spec"]["rollout"].update(settings)
    policy["spec"]["rollout"]["prometheus"]["url"] = prometheus_url
    return policy


def apply(plane: ControlPlane, manifest: Mapping[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def create_inference_service(
    plane: ControlPlane, namespace: str, ready: bool = True
) -> None:
    """Create the target InferenceService and set its Ready condition, as KServe
    would for a running predictor."""
    apply(
        plane,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": TARGET, "namespace": namespace},
            "spec": {
                "predictor": {
                    "model": {
                        "modelFormat": {"name": "adaptrec"},
                        "storageUri": "pvc://models/movie-recommender",
                    }
                }
            },
        },
    )
    set_inference_service_ready(plane, namespace, ready)


def set_inference_service_ready(plane: ControlPlane, namespace: str, ready: bool):
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    plane.kubectl(
        "patch",
        "inferenceservice",
        TARGET,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def read_rollout(plane: ControlPlane, namespace: str) -> Rollout | None:
    result = plane.kubectl(
        "get", "configmap", CONFIG_MAP, "-n", namespace, "-o", "json", check=False
    )
    if result.returncode != 0:
        return None
    text = (json.loads(result.stdout).get("data") or {}).get(CONFIG_KEY)
    return Rollout.from_json_dict(json.loads(text)) if text else None


# Chart and operator -------------------------------------------------------------


def install_chart(plane: ControlPlane, namespace: str) -> None:
    """Install the chart in namespaced mode; the CRDs are already served."""
    plane.helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        f"watchNamespace={namespace}",
        "--skip-crds",
        "--wait=false",
    )


def token_kubeconfig(plane: ControlPlane, namespace: str, path: Path) -> Path:
    """Write a kubeconfig that authenticates as the chart's operator account."""
    token = plane.kubectl(
        "create", "token", OPERATOR_ACCOUNT, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {
                    "cluster": admin["clusters"][0]["name"],
                    "user": "operator",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@dataclass
class OperatorProcess:
    """``adaptrec operator`` as a subprocess, with its log in a file."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        command = [
            str(Path(sys.executable).parent / "adaptrec"),
            "operator",
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            self.namespace,
            "--standalone",
            "--tick-interval",
            "1",
            "--liveness",
            "none",
            "--metrics-port",
            str(self.metrics_port),
            "--training-service-account",
            TRAINING_ACCOUNT,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env
        )
        log_file.close()
        return self

    def kill(self) -> None:
        """Stop the operator at once, as an OOM kill or a node failure would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=20)

    def log_tail(self, characters: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:]


# Node stand-ins ------------------------------------------------------------------


class Kubelet:
    """Reports Pod outcomes by writing Pod status, as the node's kubelet would."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane = plane
        self.namespace = namespace

    def job_pods(self, job_name: str) -> list[dict[str, Any]]:
        result = get_json(
            self.plane,
            "pods",
            "-n",
            self.namespace,
            "-l",
            f"batch.kubernetes.io/job-name={job_name}",
        )
        return result["items"]

    def pending_pod(self, job_name: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Return a Pod of the Job that no kubelet has reported on yet."""

        def probe() -> dict[str, Any] | None:
            for pod in self.job_pods(job_name):
                if (pod.get("status") or {}).get("phase") in (None, "Pending"):
                    return pod
            return None

        return wait_for(f"a pending Pod of Job {job_name}", probe, timeout_s)

    def finish(
        self,
        pod: Mapping[str, Any],
        exit_code: int,
        message: str = "",
        disruption: bool = False,
    ) -> None:
        """Mark the Pod's trainer terminated with ``exit_code`` and ``message``."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        container = pod["spec"]["containers"][0]
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
        }
        if message:
            terminated["message"] = message
        conditions = [
            {"type": "Ready", "status": "False", "lastTransitionTime": now},
        ]
        if disruption:
            conditions.append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                    "lastTransitionTime": now,
                }
            )
        status = {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "conditions": conditions,
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        }
        self.plane.kubectl(
            "patch",
            "pod",
            pod["metadata"]["name"],
            "-n",
            self.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )


class ClickExporter:
    """The model server's two counters, served by prometheus_client on loopback.

    It replaces ``adaptrec serve`` in the fault tests, where only the counts
    matter: :meth:`serve` assigns users by the rollout's user hash, as the server
    does, and clicks with the probability given per version.
    """

    def __init__(self, model: str = TARGET) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self.recommendations = Counter(
            "adaptrec_recommendations",
            "Slates served.",
            ["model", "version"],
            registry=self.registry,
        )
        self.clicks = Counter(
            "adaptrec_clicks",
            "Slates clicked.",
            ["model", "version"],
            registry=self.registry,
        )
        self.port = free_port()
        self._server, self._thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serve(
        self,
        rollout: Rollout,
        click_rates: Mapping[str, float],
        users: int,
        rng: random.Random,
    ) -> None:
        versions = [rollout.stable.version]
        if rollout.candidate is not None:
            versions.append(rollout.candidate.version)
        for version in versions:
            # Series exist from 0 before the first slate, so increase() counts it.
            self.recommendations.labels(self.model, version).inc(0)
            self.clicks.labels(self.model, version).inc(0)
        for _ in range(users):
            user = f"user-{rng.randrange(10**9)}"
            version = rollout.assign(user).version
            self.recommendations.labels(self.model, version).inc()
            if rng.random() < click_rates.get(version, 0.0):
                self.clicks.labels(self.model, version).inc()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Traffic:
    """Simulated users served in the background from the live rollout ConfigMap.

    The model server reads the rollout from its mounted ConfigMap; here the
    ConfigMap is read through the API each second, as the kubelet syncs it.
    """

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        exporter: ClickExporter,
        click_rates: Callable[[Rollout], Mapping[str, float]],
        users_per_second: int = 100,
    ) -> None:
        self.plane = plane
        self.namespace = namespace
        self.exporter = exporter
        self.click_rates = click_rates
        self.users_per_second = users_per_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = random.Random(7)
        while not self._stop.is_set():
            try:
                rollout = read_rollout(self.plane, self.namespace)
            except Exception as error:  # keep serving through API hiccups
                self.errors.append(str(error))
                rollout = None
            if rollout is not None:
                self.exporter.serve(
                    rollout, self.click_rates(rollout), self.users_per_second, rng
                )
            self._stop.wait(1.0)


def restart_apiserver(plane: ControlPlane, down_s: float = 3.0) -> None:
    """Stop kube-apiserver, wait ``down_s``, and start it again with its flags.

    NOTE: ControlPlane has no public restart, so this reaches into its process
    list; etcd keeps every object, as on a real control plane upgrade.
    """
    (apiserver,) = [p for p in plane._processes if p.name == "kube-apiserver"]
    arguments = list(apiserver.popen.args)[1:]
    apiserver.stop()
    plane._processes.remove(apiserver)
    time.sleep(down_s)
    restarted = plane._spawn("kube-apiserver", arguments)
    plane._wait_http(restarted, f"{plane.server}/readyz", 120.0, client=plane._admin)
