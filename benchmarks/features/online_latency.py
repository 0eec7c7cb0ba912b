"""Measure online feature read latency, SQLite against Redis, for 1 and 100 users.

Builds the feature repository from MovieLens-100K into a temporary folder, once per
online store (Redis: a redis-server this script starts on a free loopback port and
stops), then times ``OnlineFeatureReader.read_users``, the model server's call, and
the bare ``FeatureStore.get_online_features`` it wraps. Writes
benchmarks/results/features.json and features.md.

Run from the repository root:

    .venv/bin/python benchmarks/features/online_latency.py

``--inputs random`` replaces the fitted models with random vectors of the same
shapes, for a quick run; latency depends on the vector sizes, not their values.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from adaptrec.data import load_dataset  # noqa: E402
from adaptrec.features import (  # noqa: E402
    FeatureInputs,
    OnlineFeatureReader,
    build_features,
    open_store,
)
from tests.support.processes import stop_process  # noqa: E402
from tests.support.redis import start_redis  # noqa: E402

log = logging.getLogger("benchmarks.features")

RESULTS = REPO_ROOT / "benchmarks" / "results"
FILES = ("feature_store.yaml", "feature_store.redis.yaml", "definitions.py")
BATCH_SIZES = (1, 100)
# Target p99 for one user on SQLite: the model server reads features per request.
GOAL_P99_MS = 5.0


def random_inputs(n_items: int, seed: int = 0) -> FeatureInputs:
    """Random item vectors in the models' shapes: 384 content, 64 KG, 10 topics."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(n_items, 10))

    def encode(histories):
        counts = np.maximum(np.asarray(histories.sum(axis=1)).ravel(), 1)[:, None]
        mean = (histories @ topics) / counts
        return mean, np.ones_like(mean)

    return FeatureInputs(
        content=rng.normal(size=(n_items, 384)),
        kg=rng.normal(size=(n_items, 64)),
        kg_mask=rng.random(n_items) > 0.2,
        item_topics=topics,
        encode_user_topics=encode,
    )


def machine() -> dict:
    """Describe the machine: cores, CPU model, memory, load, software versions."""
    cpu_model = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory_kb = int(line.split()[1])
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "load_average_1m_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "feast": version("feast"),
        "redis_server": redis_version.removeprefix("v="),
        "redis_py": version("redis"),
    }


def time_reads(read, user_ids: list[str], batch: int, reads: int, seed: int):
    """Time ``reads`` calls of ``read`` on random batches; return milliseconds."""
    rng = random.Random(seed)
    for _ in range(50):
        read(rng.sample(user_ids, batch))
    latencies = []
    for _ in range(reads):
        users = rng.sample(user_ids, batch)
        start = time.perf_counter()
        read(users)
        latencies.append((time.perf_counter() - start) * 1000)
    return np.array(latencies)


def summarise(rounds: list[np.ndarray]) -> dict:
    """Pool the rounds' latencies; keep each round's p99 to show the spread."""
    latencies = np.concatenate(rounds)
    return {
        "reads": len(latencies),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "max_ms": round(float(latencies.max()), 3),
        "p99_ms_per_round": [
            round(float(np.percentile(part, 99)), 3) for part in rounds
        ],
    }


def measure(
    store, user_ids: list[str], now: datetime, reads: int, rounds: int
) -> list[dict]:
    """Time each call and batch size in interleaved rounds, so that a burst of
    load from other processes does not fall on one configuration alone."""
    reader = OnlineFeatureReader(store)

    def read_with_reader(users: list[str]):
        return reader.read_users(users, now=now)

    def read_with_feast(users: list[str]):
        return store.get_online_features(
            features=reader.service, entity_rows={"user_id": users}
        )

    paths = {
        "OnlineFeatureReader.read_users": read_with_reader,
        "FeatureStore.get_online_features": read_with_feast,
    }
    samples: dict[tuple[int, str], list[np.ndarray]] = {}
    for round_index in range(rounds):
        for batch in BATCH_SIZES:
            count = reads if batch == 1 else max(reads // 4, 100)
            for path, read in paths.items():
                latencies = time_reads(
                    read, user_ids, batch, count // rounds, seed=round_index
                )
                samples.setdefault((batch, path), []).append(latencies)
    rows = []
    for (batch, path), parts in samples.items():
        rows.append({"users": batch, "call": path, **summarise(parts)})
        log.info("%s, %d users: %s", path, batch, rows[-1])
    return rows


def write_markdown(result: dict, path: Path) -> None:
    info = result["machine"]
    lines = [
        "# Online feature read latency",
        "",
        f"Measured {result['date']} with `{result['command']}` on "
        f"{info['cores']} cores ({info['cpu_model']}), {info['memory_gib']} GiB "
        f"memory, 1-minute load average {info['load_average_1m_at_start']:.2f} "
        f"at the start and {result['load_average_1m_at_end']:.2f} at the end. "
        "Other jobs share the cores, so p99 and max depend on their load; the "
        "per-round p99 shows that spread.",
        f"Feast {info['feast']}, redis-server {info['redis_server']}, redis-py "
        f"{info['redis_py']}, Python {info['python']}. Dataset: {result['dataset']}, "
        f"item vectors from {result['inputs']}; the `serving` feature service "
        "(user profile and content landscape).",
        "",
        "| online store | users per read | call | reads | p50 ms | p99 ms | "
        "p99 ms per round | max ms |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for store, rows in result["stores"].items():
        for row in rows:
            per_round = ", ".join(f"{value:.1f}" for value in row["p99_ms_per_round"])
            lines.append(
                f"| {store} | {row['users']} | `{row['call']}` | {row['reads']} | "
                f"{row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {per_round} | "
                f"{row['max_ms']:.3f} |"
            )
    goal = result["goal"]
    verdict = "met" if goal["met"] else "missed"
    lines += [
        "",
        f"Goal: p99 under {goal['p99_ms']} ms for one user on SQLite through "
        f"`OnlineFeatureReader.read_users`: {verdict} ({goal['measured_p99_ms']:.3f} "
        "ms).",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="dataset to build from")
    parser.add_argument(
        "--inputs",
        choices=("models", "random"),
        default="models",
        help="item vectors from the fitted models or random ones of the same shape",
    )
    parser.add_argument(
        "--reads", type=int, default=2000, help="timed reads of one user per call"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds per configuration"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)

    dataset = load_dataset(args.dataset)
    if args.inputs == "random":
        inputs = random_inputs(dataset.n_items)
    else:
        from adaptrec.features.inputs import inputs_from_models

        inputs = inputs_from_models(dataset)
    user_ids = [str(user) for user in dataset.user_ids]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "machine": machine(),
        "dataset": dataset.name,
        "inputs": "fitted models" if args.inputs == "models" else "random vectors",
        "stores": {},
    }

    with tempfile.TemporaryDirectory(prefix="feature-bench-") as scratch:
        redis = start_redis(Path(scratch))
        try:
            for online_store in ("sqlite", "redis"):
                repo = Path(scratch) / online_store
                repo.mkdir()
                for name in FILES:
                    (repo / name).write_bytes(
                        (REPO_ROOT / "feature_repo" / name).read_bytes()
                    )
                options = {"online_store": online_store}
                if online_store == "redis":
                    options["redis_url"] = redis.url(0)
                summary = build_features(repo, dataset, inputs, **options)
                store = open_store(repo, **options)
                result["stores"][online_store] = measure(
                    store, user_ids, summary.end_date, args.reads, args.rounds
                )
        finally:
            stop_process(redis.process)

    result["load_average_1m_at_end"] = os.getloadavg()[0]
    sqlite_one = next(
        row
        for row in result["stores"]["sqlite"]
        if row["users"] == 1 and row["call"] == "OnlineFeatureReader.read_users"
    )
    result["goal"] = {
        "p99_ms": GOAL_P99_MS,
        "measured_p99_ms": sqlite_one["p99_ms"],
        "met": sqlite_one["p99_ms"] < GOAL_P99_MS,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "features.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.output / "features.md")
    log.info("wrote %s and features.md", args.output / "features.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
