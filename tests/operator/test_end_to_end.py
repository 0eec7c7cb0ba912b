"""examples/policy.yaml end to end: chart, operator, trainer, model server, Prometheus.

The chart is installed for real and ``adaptrec operator`` runs as a subprocess
with the chart's operator ServiceAccount token. The test plays the node:

- it runs the training Pod's container command with a tiny budget: the image's
  entrypoint ``adaptrec`` plus the Job's args, with the image's paths
  (``/app/feature_repo``, ``/dev/termination-log``) mapped to local ones. It
  reports the exit code and termination message on the Pod status, as a kubelet
  would, and the Job controller in kube-controller-manager completes the Job;
- it copies the rollout ConfigMap into the file that a real ``adaptrec serve``
  process reads, as the kubelet syncs a ConfigMap volume;
- simulated users request slates from that server and click with a rate per
  version; a real Prometheus scrapes the server's counters.

Round 1 uses the real trainer's result, and better clicks for the candidate, so it
must be promoted. Round 2 (started by a spec change) gets a prepared result,
because a second real tuning round would add a minute and test nothing new: with
no traffic the operator must hold, then with worse clicks it must roll back.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adaptrec.hyperparams import HyperparamSet, HyperparamSpace
from adaptrec.rollout import Rollout
from adaptrec.testing.controlplane import REPO_ROOT, ControlPlane, ControlPlaneError
from tests.operator.cluster import (
    Kubelet,
    OperatorProcess,
    apply,
    create_inference_service,
    get_policy,
    install_chart,
    policy_manifest,
    read_rollout,
    token_kubeconfig,
    wait_for,
)
from tests.support.model_server import start_model_server, stop_model_server
from tests.support.prometheus import start_prometheus, stop_prometheus

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SPACE = HyperparamSpace.from_yaml()
ADAPTREC = Path(sys.executable).with_name("adaptrec")
MODEL = "movie-recommender"
# A tiny tuning budget through the policy's own training.args.
TRAINER_ARGS = [
    "train",
    "--preset",
    "quick",
    "--episodes",
    "2",
    "--episode-length",
    "3",
    "--users-per-step",
    "16",
]
TRAINER_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adaptrec.data import load_dataset
    from adaptrec.models import HybridRecommender, ModelConfig

    dataset = load_dataset("ml-100k")
    recommender = HybridRecommender.fit(
        dataset, dataset.positives(), SPACE, ModelConfig.quick()
    )
    directory = tmp_path_factory.mktemp("model")
    recommender.save(directory)
    return directory


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Feast repository built from MovieLens-100K, as the image would ship it."""
    repo = tmp_path_factory.mktemp("feature_repo")
    for path in (REPO_ROOT / "feature_repo").iterdir():
        if path.is_file():
            shutil.copy(path, repo / path.name)
    subprocess.run(
        [str(ADAPTREC), "-q", "features", "build", "--repo", str(repo)],
        check=True,
        timeout=1200,
        capture_output=True,
    )
    return repo


class ConfigMapVolume:
    """Copies the rollout ConfigMap into a file, as the kubelet syncs a volume."""

    def __init__(self, plane: ControlPlane, namespace: str, path: Path) -> None:
        self.plane, self.namespace, self.path = plane, namespace, path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sync(self) -> Rollout | None:
        rollout = read_rollout(self.plane, self.namespace)
        if rollout is not None:
            text = json.dumps(rollout.to_json_dict())
            if not self.path.exists() or self.path.read_text() != text:
                staged = self.path.with_suffix(".tmp")
                staged.write_text(text)
                staged.replace(self.path)
        return rollout

    def _run(self) -> None:
        while not self._stop.is_set():
            # The API server may be briefly unreachable; the next sync catches up.
            with contextlib.suppress(ControlPlaneError, subprocess.SubprocessError):
                self.sync()
            self._stop.wait(0.5)

    def __enter__(self) -> ConfigMapVolume:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Users:
    """Simulated users of the model server: slates, and clicks by version."""

    def __init__(self, url: str, volume: ConfigMapVolume, user_ids: list[str]):
        self.url, self.volume, self.user_ids = url, volume, user_ids
        self.rates: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.served: dict[str, int] = {}
        self.errors: list[str] = []

    def start(self, stable_rate: float, candidate_rate: float) -> None:
        rollout = self.volume.sync()
        assert rollout is not None and rollout.candidate is not None
        self.rates = {
            rollout.stable.version: stable_rate,
            rollout.candidate.version: candidate_rate,
        }
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = random.Random(11)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self._request_and_click(client, rng)
                except httpx.HTTPError as error:
                    # A loaded machine can reset a connection; users retry.
                    self.errors.append(str(error))
                self._stop.wait(0.02)

    def _request_and_click(self, client: httpx.Client, rng: random.Random) -> None:
        users = rng.sample(self.user_ids, 8)
        response = client.post(
            f"/v1/models/{MODEL}:predict", json={"instances": users, "k": 10}
        )
        if response.status_code != 200:
            self.errors.append(f"predict: {response.status_code} {response.text}")
            return
        for prediction in response.json()["predictions"]:
            version = prediction["version"]
            self.served[version] = self.served.get(version, 0) + 1
            if rng.random() < self.rates.get(version, 0.0):
                client.post(
                    f"/v1/models/{MODEL}/feedback",
                    json={
                        "userId": prediction["userId"],
                        "itemId": rng.choice(prediction["items"]),
                        "version": version,
                    },
                )


def run_training_pod(pod: dict, feature_repo: Path, work: Path) -> tuple[int, str]:
    """Run the Pod's trainer command as a kubelet would; return exit code and
    termination message."""
    container = pod["spec"]["containers"][0]
    result_file = work / "termination-log"
    result_file.write_text("")
    mapping = {
        "/dev/termination-log": str(result_file),
        "/app/feature_repo": str(feature_repo),
    }
    command = container.get("command") or [str(ADAPTREC)]
    args = [mapping.get(arg, arg) for arg in container.get("args", [])]
    env = dict(os.environ)
    env.update(
        {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    )
    log_path = work / "trainer.log"
    with log_path.open("wb") as log:
        completed = subprocess.run(
            [*command, *args],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=TRAINER_TIMEOUT_S,
        )
    message = result_file.read_text()
    if completed.returncode != 0:
        # terminationMessagePolicy FallbackToLogsOnError: the log's tail.
        message = log_path.read_text(errors="replace")[-2048:]
    return completed.returncode, message


@pytest.fixture
def deployment(crds: ControlPlane, tmp_path: Path, saved_model: Path) -> Iterator[dict]:
    plane = crds
    namespace = plane.create_namespace("e2e")
    install_chart(plane, namespace)
    create_inference_service(plane, namespace)
    kubeconfig = token_kubeconfig(plane, namespace, tmp_path / "operator.kubeconfig")
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log").start()
    volume = ConfigMapVolume(plane, namespace, tmp_path / "rollout.json")
    resources: dict = {"plane": plane, "namespace": namespace, "operator": operator}
    resources["volume"] = volume
    resources["work"] = tmp_path
    try:
        yield resources
    finally:
        for key in ("users",):
            if key in resources:
                resources[key].stop()
        if "server" in resources:
            stop_model_server(resources["server"])
        if "prometheus" in resources:
            stop_prometheus(resources["prometheus"])
        operator.stop()
        plane.helm("uninstall", "adaptrec", "--namespace", namespace, check=False)
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_example_policy_end_to_end(deployment, saved_model, feature_repo):
    plane, namespace = deployment["plane"], deployment["namespace"]
    operator, volume, work = (
        deployment["operator"],
        deployment["volume"],
        deployment["work"],
    )
    prometheus_dir = work / "prometheus"
    prometheus_dir.mkdir()

    def status() -> dict:
        return get_policy(plane, namespace).get("status") or {}

    def wait(description, probe, timeout_s=120.0):
        try:
            return wait_for(description, probe, timeout_s)
        except ControlPlaneError as error:
            raise AssertionError(
                f"{error}; status {json.dumps(status(), indent=1)}\n"
                f"operator log:\n{operator.log_tail()}"
            ) from None

    def phase(name, timeout_s=120.0):
        return wait(f"phase {name}", lambda: status().get("phase") == name, timeout_s)

    # The model server listens before the policy exists, so Prometheus can
    # scrape it; it starts on the space's initial set.
    volume.path.write_text(json.dumps(Rollout(SPACE.initial()).to_json_dict()))
    server = start_model_server(
        work, saved_model, model_name=MODEL, rollout_file=volume.path
    )
    deployment["server"] = server
    prometheus = start_prometheus(prometheus_dir, [server.target])
    deployment["prometheus"] = prometheus
    users = Users(server.url, volume, [str(u) for u in range(1, 944)])
    deployment["users"] = users

    manifest = policy_manifest(
        namespace, prometheus.url, analysisInterval="3s", minSamples=150, deadline="90s"
    )
    manifest["spec"]["training"]["args"] = TRAINER_ARGS
    apply(plane, manifest)

    with volume:
        # Round 1: the real trainer, then a better candidate is promoted.
        job = wait("round 1", lambda: status().get("lastJobName"))
        kubelet = Kubelet(plane, namespace)
        pod = kubelet.pending_pod(job)
        exit_code, message = run_training_pod(pod, feature_repo, work)
        assert exit_code == 0, message
        kubelet.finish(pod, exit_code, message)
        trained = HyperparamSet.from_json_dict(
            json.loads(message)["hyperparams"], SPACE
        )

        phase("Canary")
        assert status()["candidate"]["version"] == trained.version
        wait(
            "the server's rollout file",
            lambda: getattr(volume.sync(), "candidate", None) == trained,
        )
        users.start(stable_rate=0.05, candidate_rate=0.35)
        phase("Stable", timeout_s=180)
        users.stop()
        first = status()
        assert [h["decision"] for h in first["history"]] == ["Promoted"], (
            first["history"],
            users.served,
            users.errors[-3:],
        )
        assert first["current"]["version"] == trained.version
        assert volume.sync().stable == trained

        # Round 2: a spec change starts it, and a prepared result replaces the
        # trainer's. Without traffic the operator holds. With worse clicks it
        # rolls back to round 1's set.
        values = dict(trained.values_dict)
        values["alpha"] = 0.1 if values["alpha"] != 0.1 else 0.2
        worse = SPACE.validate(values)
        plane.kubectl(
            "patch", "hyperparampolicy", MODEL, "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"agent": {"seed": 8}}}),
        )  # fmt: skip
        job = wait(
            "round 2", lambda: status().get("round") == 2 and status()["lastJobName"]
        )
        pod = kubelet.pending_pod(job)
        result = {"hyperparams": worse.to_json_dict(), "metrics": {}, "episodes": 2}
        kubelet.finish(pod, 0, json.dumps(result))
        phase("Canary")
        held = wait(
            "a Hold without data",
            lambda: (status().get("analysis") or {}).get("decision") == "Hold",
            60,
        )
        assert held
        assert status()["phase"] == "Canary"
        users.start(stable_rate=0.35, candidate_rate=0.05)
        phase("Stable", timeout_s=180)
        users.stop()
        second = status()
        decisions = [h["decision"] for h in second["history"]]
        assert decisions == ["Promoted", "RolledBack"], second["history"]
        assert second["current"]["version"] == trained.version
        final = volume.sync()
        assert final.stable == trained
        assert final.candidate is None
