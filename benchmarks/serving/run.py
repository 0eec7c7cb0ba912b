"""Measure the model server's latency and throughput against a bare FastAPI endpoint.

Both servers run as subprocesses on 127.0.0.1 with one uvicorn worker each, and
locust (headless, as a library, FastHttpUser) drives them one after the other in
the same run:

0. sequential: one locust user sends one request at a time for ``--duration``
   seconds, which gives the service latency without queueing;
1. fixed rate: about ``--rate`` requests/s with Poisson arrivals for
   ``--duration`` seconds, from which p50, p99 and max latency are taken;
2. max throughput: ``--concurrency`` users with no wait time for ``--duration``
   seconds, from which requests/s is taken.

Each request is for the top ``--k`` items of one random known user over the
v1 protocol. Every phase stops after ``--duration`` seconds or ``--max-requests``
requests, whichever comes first. Last, ``asgi_cost.py`` measures the CPU time per
request of both apps in process, which other load on the machine barely changes.
Results go to ``benchmarks/results/serving.json`` and ``serving.md`` with the
command, the machine and the date.

Usage::

    .venv/bin/python benchmarks/serving/run.py [--model-dir DIR]

Without ``--model-dir``, the hybrid recommender is fitted on MovieLens-100K fold 0
with ``ModelConfig.quick()`` and saved under ``.cache/benchmarks/`` for reuse.
"""

# locust patches the standard library for gevent when imported, so it goes first.
from locust import FastHttpUser, constant, task  # isort: skip
from locust.env import Environment  # isort: skip

import argparse
import json
import logging
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import httpx
import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_CACHE = REPOSITORY / ".cache" / "benchmarks" / "serving-model"
MODEL_NAME = "adaptrec"
START_TIMEOUT_S = 120.0

log = logging.getLogger("benchmarks.serving")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the model server against a bare FastAPI endpoint."
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="saved HybridRecommender to serve (default: fit the quick preset on "
        f"MovieLens-100K fold 0 and cache it in {DEFAULT_MODEL_CACHE})",
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests/s in the fixed-rate phase"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per phase"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=50_000,
        help="requests after which a phase stops early",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="locust users in the max-throughput phase",
    )
    parser.add_argument("--k", type=int, default=10, help="slate length per request")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=REPOSITORY / "benchmarks" / "results",
        help="where serving.json and serving.md are written",
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_model(model_dir: Path | None) -> Path:
    """Return a directory with saved artefacts, fitting the quick model if needed."""
    if model_dir is not None:
        return model_dir
    if (DEFAULT_MODEL_CACHE / "manifest.json").exists():
        log.info("reusing the model saved in %s", DEFAULT_MODEL_CACHE)
        return DEFAULT_MODEL_CACHE
    # The fit runs in a subprocess, because torch and numba do not mix with the
    # gevent patches that locust applied to this process.
    log.info("fitting the quick hybrid recommender on MovieLens-100K fold 0")
    code = (
        "import sys; from pathlib import Path; "
        "from benchmarks.serving.model_fixture import fit_and_save; "
        "fit_and_save(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(DEFAULT_MODEL_CACHE)],
        check=True,
        cwd=REPOSITORY,
    )
    return DEFAULT_MODEL_CACHE


def read_catalogue(model_dir: Path) -> tuple[list[str], int]:
    """Return a saved model's raw user ids and item count, read in a subprocess.

    A subprocess, for the same reason as the fit in :func:`ensure_model`.
    """
    code = (
        "import sys, json; from pathlib import Path; "
        "from adaptrec.models.hybrid import HybridRecommender; "
        "model = HybridRecommender.load(Path(sys.argv[1]), device='cpu'); "
        "print(json.dumps([[str(user) for user in model.user_ids], model.n_items]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, str(model_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
    ).stdout
    user_ids, n_items = json.loads(output.strip().splitlines()[-1])
    return user_ids, n_items


def measure_cpu_cost(model_dir: Path) -> dict[str, Any]:
    """Run asgi_cost.py, which times both apps in process, in a subprocess."""
    output = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("asgi_cost.py")), str(model_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def start_server(command: list[str], port: int, log_path: Path) -> subprocess.Popen:
    """Start a server subprocess and wait until its v1 model route returns 200."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPOSITORY
        )
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"{command[0]} exited with code {process.returncode}; log: "
                f"{log_path.read_text(errors='replace')[-2000:]}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError(f"{url} was not ready within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_phase(
    host: str,
    user_ids: list[str],
    k: int,
    users: int,
    rate: float | None,
    duration_s: float,
    max_requests: int,
) -> dict[str, Any]:
    """Drive ``host`` with locust for one phase; return counts and latencies (ms).

    With ``rate``, each of ``users`` locust users waits an exponential time with
    mean ``users / rate`` seconds after each response, so arrivals are close to a
    Poisson process of ``rate`` requests/s (slightly below it, because each wait
    starts after the response). Fixed waits would make all users fire in step,
    in bursts that measure queueing behind each other rather than the server.
    Without ``rate``, every user sends its next request as soon as the last
    returns.
    """
    arrivals = random.Random(0)

    def poisson_wait(_: Any) -> float:
        assert rate is not None
        return arrivals.expovariate(rate / users)

    wait = constant(0) if rate is None else poisson_wait

    class Client(FastHttpUser):
        wait_time = wait

        @task
        def predict(self) -> None:
            body = {"instances": [random.choice(user_ids)], "k": k}
            self.client.post(f"/v1/models/{MODEL_NAME}:predict", json=body)

    environment = Environment(user_classes=[Client], host=host)
    latencies: list[float] = []
    failures: list[str] = []

    def on_request(response_time: float, exception: Any, **_: Any) -> None:
        if exception is not None:
            failures.append(repr(exception))
        else:
            latencies.append(response_time)

    environment.events.request.add_listener(on_request)
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=users)
    started = time.perf_counter()
    while (
        time.perf_counter() - started < duration_s
        and len(latencies) + len(failures) < max_requests
    ):
        gevent.sleep(0.1)
    elapsed = time.perf_counter() - started
    runner.quit()

    values = np.asarray(latencies, dtype=np.float64)
    return {
        "locust_users": users,
        "target_rate_rps": rate,
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
        "failures": len(failures),
        "first_failures": failures[:3],
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(values, 50)), 3),
            "p90": round(float(np.percentile(values, 90)), 3),
            "p99": round(float(np.percentile(values, 99)), 3),
            "max": round(float(values.max()), 3),
        },
    }


def machine_description() -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    memory_gib = None
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_report(result: dict[str, Any], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    (output_dir / "serving.md").write_text(render_markdown(result))


def render_markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    goal = result["goal"]
    lines = [
        "# Serving benchmark",
        "",
        f"Date: {result['date']}. Command: `{result['command']}`.",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB memory, Python {machine['python']}. The load "
        "generator (locust, one process) and the server under test share these "
        "cores, so the numbers include the client's cost. Load average (1, 5, 15 "
        f"min) before the run: {result['load_average_before']}, after: "
        f"{result['load_average_after']}; other processes on the machine add to it.",
        "",
        f"Each request is for the top {result['k']} items of one random known "
        f"user in a {result['n_items']}-item catalogue over the v1 protocol; both "
        "servers run one uvicorn worker on 127.0.0.1.",
        "",
        "| server | phase | requests | failures | requests/s | p50 ms | p99 ms "
        "| max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    concurrency = result["model_server"]["max_throughput"]["locust_users"]
    labels = {
        "sequential": "one request at a time",
        "fixed_rate": f"Poisson, {result['goal']['rate_rps']:.0f} req/s",
        "max_throughput": f"max, {concurrency} users",
    }
    for phase, label in labels.items():
        for server in ("model_server", "bare_fastapi"):
            run = result[server][phase]
            latency = run["latency_ms"]
            lines.append(
                f"| {server} | {label} | {run['requests']} | {run['failures']} | "
                f"{run['throughput_rps']} | {latency['p50']} | {latency['p99']} | "
                f"{latency['max']} |"
            )
    cpu = result["cpu_per_request"]
    lines += [
        "",
        "CPU time per request, each app called in process without sockets or a "
        f"load generator ({cpu['requests']} requests, `asgi_cost.py`): model "
        f"server {cpu['model_server_cpu_us']} µs, bare endpoint "
        f"{cpu['bare_fastapi_cpu_us']} µs. Unlike the latencies above, this "
        "barely depends on other processes.",
        "",
        f"Goal: p99 under {goal['p99_ms_limit']} ms at {goal['rate_rps']:.0f} "
        f"requests/s: measured {goal['p99_ms']} ms, "
        f"{'met' if goal['p99_met'] else 'missed'}. Throughput at least "
        f"{goal['throughput_ratio_min']:.0%} of the bare endpoint's: measured "
        f"{goal['throughput_ratio']:.0%}, "
        f"{'met' if goal['throughput_met'] else 'missed'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args()
    model_dir = ensure_model(args.model_dir)
    user_ids, n_items = read_catalogue(model_dir)
    logs = REPOSITORY / ".cache" / "benchmarks"
    logs.mkdir(parents=True, exist_ok=True)

    model_port = free_port()
    bare_port = free_port()
    servers = {
        "model_server": (
            [
                str(Path(sys.executable).with_name("adaptrec")), "-q", "serve",
                "--model-dir", str(model_dir),
                "--model-name", MODEL_NAME,
                "--http-port", str(model_port),
                "--max-users", "1",
                "--torch-threads", "1",
            ],
            model_port,
        ),
        "bare_fastapi": (
            [
                sys.executable, str(REPOSITORY / "benchmarks/serving/bare_app.py"),
                "--port", str(bare_port),
            ],
            bare_port,
        ),
    }  # fmt: skip

    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_description(),
        "load_average_before": [round(value, 2) for value in os.getloadavg()],
        "k": args.k,
        "n_items": n_items,
        "model_server": {},
        "bare_fastapi": {},
    }
    processes = {}
    try:
        for name, (command, port) in servers.items():
            log.info("starting %s on port %d", name, port)
            processes[name] = start_server(command, port, logs / f"{name}.log")
        hosts = {
            name: f"http://127.0.0.1:{port}" for name, (_, port) in servers.items()
        }
        for name, host in hosts.items():
            log.info("%s: warming up for 3 s", name)
            run_phase(host, user_ids, args.k, 4, None, 3.0, args.max_requests)

        # The two servers take turns within each phase, so a change in the load
        # from other processes on the machine affects both alike.
        phases = {
            "sequential": (1, None),
            "fixed_rate": (max(1, int(args.rate // 4)), args.rate),
            "max_throughput": (args.concurrency, None),
        }
        for phase, (users, rate) in phases.items():
            for name, host in hosts.items():
                log.info("%s: %s for %.0f s", name, phase, args.duration)
                run = run_phase(
                    host,
                    user_ids,
                    args.k,
                    users,
                    rate,
                    args.duration,
                    args.max_requests,
                )
                result[name][phase] = run
                log.info("%s: %s", name, json.dumps(run))
    finally:
        for process in processes.values():
            stop_server(process)
    result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    log.info("measuring CPU time per request in process")
    result["cpu_per_request"] = measure_cpu_cost(model_dir)

    model_p99 = result["model_server"]["fixed_rate"]["latency_ms"]["p99"]
    ratio = (
        result["model_server"]["max_throughput"]["throughput_rps"]
        / result["bare_fastapi"]["max_throughput"]["throughput_rps"]
    )
    result["goal"] = {
        "rate_rps": args.rate,
        "p99_ms_limit": 10.0,
        "p99_ms": model_p99,
        "p99_met": model_p99 < 10.0,
        "throughput_ratio_min": 0.7,
        "throughput_ratio": round(ratio, 3),
        "throughput_met": ratio >= 0.7,
    }
    write_report(result, args.output_dir)
    log.info("wrote %s", args.output_dir / "serving.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
