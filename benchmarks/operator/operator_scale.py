"""Measure the operator on the local control plane: apply-to-Job latency, and
memory and reconcile latency with 100 policies.

Starts etcd, kube-apiserver and kube-controller-manager on loopback (the
binaries of scripts/build-k8s.sh), applies the CRDs, and runs ``adaptrec
operator`` as a subprocess with the admin kubeconfig. Then:

1. applies single policies one at a time and times each from ``kubectl apply``
   returning to the tuning Job existing (polled every 50 ms);
2. applies ``--policies`` policies at once, waits until each has its Job, and
   samples the operator's resident memory (``/proc/PID/status``) and its
   ``adaptrec_operator_reconcile_seconds`` histogram over ``--window`` seconds of
   steady state, in which every policy is reconciled once per tick.

Writes benchmarks/results/operator.json and operator.md. Run from the repository
root after scripts/build-k8s.sh:

    .venv/bin/python benchmarks/operator/operator_scale.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from adaptrec.testing.controlplane import ControlPlane, find_binaries  # noqa: E402
from tests.support.processes import stop_process  # noqa: E402
from tests.support.prometheus import free_port  # noqa: E402

log = logging.getLogger("benchmarks.operator")

RESULTS = REPO_ROOT / "benchmarks" / "results"
POLICY_CRD = REPO_ROOT / "crds" / "hyperparampolicies.adaptrec.io.yaml"
ISVC_CRD = REPO_ROOT / "tests" / "cluster" / "manifests" / "inferenceservice-crd.yaml"
EXAMPLE = REPO_ROOT / "examples" / "policy.yaml"
NAMESPACE = "bench"


def machine() -> dict:
    """Describe the machine: cores, CPU model, memory and load at the start."""
    cpu_model = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 2**20, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "kopf": version("kopf"),
    }


def policy(name: str) -> dict:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"] = {"name": name, "namespace": NAMESPACE}
    rollout = document["spec"]["rollout"]
    rollout["configMapName"] = f"{name}-rollout"
    # Nothing listens there: the benchmark measures the operator, not analysis.
    rollout["prometheus"]["url"] = "http://127.0.0.1:9"
    return document


def apply(plane: ControlPlane, documents: list[dict]) -> None:
    text = "\n---\n".join(json.dumps(document) for document in documents)
    plane.kubectl("apply", "-f", "-", input=text)


def job_of(plane: ControlPlane, name: str) -> str | None:
    result = plane.kubectl(
        "get",
        "jobs",
        "-n",
        NAMESPACE,
        "-l",
        f"adaptrec.io/policy={name}",
        "-o",
        "name",
        check=False,
    )
    return result.stdout.strip() or None


def jobs_created(plane: ControlPlane) -> set[str]:
    result = plane.kubectl("get", "jobs", "-n", NAMESPACE, "-o", "json", check=False)
    items = json.loads(result.stdout or "{}").get("items", [])
    return {item["metadata"]["labels"].get("adaptrec.io/policy") for item in items}


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def reconcile_histogram(metrics_url: str) -> tuple[dict[float, float], float, float]:
    """Return cumulative bucket counts, the sum and the count of reconciles."""
    text = httpx.get(metrics_url, timeout=5).text
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("adaptrec_operator_reconcile_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(
                line.rsplit(" ", 1)[1]
            )
        elif line.startswith("adaptrec_operator_reconcile_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("adaptrec_operator_reconcile_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    return buckets, total, count


def quantile(buckets: dict[float, float], q: float) -> float:
    """Estimate a quantile from cumulative buckets by linear interpolation,
    as PromQL's histogram_quantile does."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / max(buckets[bound] - lower_count, 1e-12)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, buckets[bound]
    return bounds[-1]


def measure(args: argparse.Namespace, work: Path) -> dict:
    plane = ControlPlane(work / "plane", find_binaries())
    plane.start()
    operator = None
    try:
        plane.kubectl(
            "apply", "--server-side", "-f", str(POLICY_CRD), "-f", str(ISVC_CRD)
        )
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/hyperparampolicies.adaptrec.io",
        )
        plane.kubectl("create", "namespace", NAMESPACE)
        apply(
            plane,
            [
                {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "metadata": {"name": "movie-recommender", "namespace": NAMESPACE},
                    "spec": {"predictor": {"model": {"modelFormat": {"name": "x"}}}},
                }
            ],
        )
        metrics_port = free_port()
        command = [
            str(Path(sys.executable).parent / "adaptrec"),
            "-q",
            "operator",
            "--kubeconfig",
            str(plane.kubeconfig),
            "--namespace",
            NAMESPACE,
            "--tick-interval",
            str(args.tick_interval),
            "--liveness",
            "none",
            "--metrics-port",
            str(metrics_port),
        ]
        log_path = work / "operator.log"
        with log_path.open("wb") as log_file:
            operator = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT
            )
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(metrics_url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or operator.poll() is not None:
                    raise RuntimeError(log_path.read_text()[-3000:]) from None
                time.sleep(0.2)
        time.sleep(3)
        idle_rss = resident_mib(operator.pid)

        # 1. Apply to Job, one policy at a time.
        latencies = []
        for index in range(args.single):
            name = f"single-{index}"
            started = time.perf_counter()
            apply(plane, [policy(name)])
            while job_of(plane, name) is None:
                if time.perf_counter() - started > 120:
                    raise RuntimeError(f"no Job for {name} within 120 s")
                time.sleep(0.05)
            latencies.append(time.perf_counter() - started)
            log.info("policy %s: Job after %.2f s", name, latencies[-1])

        # 2. Many policies at once.
        names = [f"scale-{index:03d}" for index in range(args.policies)]
        started = time.perf_counter()
        for first in range(0, len(names), 25):
            apply(plane, [policy(name) for name in names[first : first + 25]])
        while not set(names) <= jobs_created(plane):
            if time.perf_counter() - started > args.timeout:
                missing = len(set(names) - jobs_created(plane))
                raise RuntimeError(f"{missing} policies without a Job after timeout")
            time.sleep(1.0)
        all_jobs_s = time.perf_counter() - started
        log.info("%d policies: every Job after %.1f s", len(names), all_jobs_s)

        before, total_before, count_before = reconcile_histogram(metrics_url)
        samples = []
        window_end = time.monotonic() + args.window
        while time.monotonic() < window_end:
            samples.append(resident_mib(operator.pid))
            time.sleep(1.0)
        after, total_after, count_after = reconcile_histogram(metrics_url)
        window = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
        reconciles = count_after - count_before
        return {
            "idle_rss_mib": round(idle_rss, 1),
            "apply_to_job_s": {
                "samples": [round(value, 3) for value in latencies],
                "median": round(sorted(latencies)[len(latencies) // 2], 3),
                "max": round(max(latencies), 3),
            },
            "policies": args.policies,
            "all_jobs_created_s": round(all_jobs_s, 1),
            "rss_mib": {
                "mean": round(sum(samples) / len(samples), 1),
                "max": round(max(samples), 1),
            },
            "window_s": args.window,
            "reconciles_in_window": int(reconciles),
            "reconciles_per_second": round(reconciles / args.window, 1),
            "reconcile_s": {
                "mean": round((total_after - total_before) / max(reconciles, 1), 4),
                "p50": round(quantile(window, 0.5), 4),
                "p99": round(quantile(window, 0.99), 4),
            },
        }
    finally:
        if operator is not None:
            stop_process(operator)
        plane.stop()


def write_markdown(result: dict, path: Path) -> None:
    info = result["machine"]
    numbers = result["results"]
    lines = [
        "# Operator on the local control plane",
        "",
        f"Measured {result['date']} with `{result['command']}` on {info['cores']} "
        f"cores ({info['cpu_model']}), {info['memory_gib']} GiB memory, 1-minute "
        f"load average {info['load_average_1m']} at the start (the machine is "
        f"shared, so latencies are noisy). Python {info['python']}, kopf "
        f"{info['kopf']}; etcd, kube-apiserver and kube-controller-manager on "
        f"loopback; operator tick every {result['tick_interval_s']} s.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| apply to Job created, median of {len(numbers['apply_to_job_s']['samples'])}"
        f" (s) | {numbers['apply_to_job_s']['median']} |",
        f"| apply to Job created, max (s) | {numbers['apply_to_job_s']['max']} |",
        f"| operator RSS, idle (MiB) | {numbers['idle_rss_mib']} |",
        f"| {numbers['policies']} policies applied to every Job created (s) | "
        f"{numbers['all_jobs_created_s']} |",
        f"| operator RSS with {numbers['policies']} policies, mean (MiB) | "
        f"{numbers['rss_mib']['mean']} |",
        f"| operator RSS with {numbers['policies']} policies, max (MiB) | "
        f"{numbers['rss_mib']['max']} |",
        f"| reconciles per second over {numbers['window_s']} s | "
        f"{numbers['reconciles_per_second']} |",
        f"| reconcile latency, mean (s) | {numbers['reconcile_s']['mean']} |",
        f"| reconcile latency, p50 (s, from histogram buckets) | "
        f"{numbers['reconcile_s']['p50']} |",
        f"| reconcile latency, p99 (s, from histogram buckets) | "
        f"{numbers['reconcile_s']['p99']} |",
        "",
        "A reconcile is one timer tick of one policy in phase Training: it reads "
        "the policy, the target and the Job, and writes nothing when nothing "
        "changed. Percentiles are interpolated within the histogram's buckets, as "
        "PromQL's histogram_quantile does, so they are estimates.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--single", type=int, default=5)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--tick-interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    started = datetime.now(UTC).isoformat(timespec="seconds")
    info = machine()
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as work:
        numbers = measure(args, Path(work))
    result = {
        "date": started,
        "command": "python "
        + shlex.join(["benchmarks/operator/operator_scale.py"] + sys.argv[1:]),
        "machine": info,
        "tick_interval_s": args.tick_interval,
        "results": numbers,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "operator.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, RESULTS / "operator.md")
    print(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
