"""Measure DQN environment steps per second and full-catalogue top-10 throughput.

On MovieLens-100K fold 0 with the real hybrid recommender (``ModelConfig.quick()``)
and the user simulator fitted on the fold's training ratings, this script records:

1. environment steps/s with uniformly random actions (recommendation, simulated
   clicks and state building, no learning);
2. DQN training steps/s (the same plus epsilon-greedy acting, replay and one
   gradient step every ``train_frequency`` steps), and the wall time that the full
   protocol of 100,000 episodes would take at that rate (an extrapolation);
3. full-catalogue top-10 scoring throughput in users/s: ``recommend`` over every
   user in batches of each ``--batch-sizes`` value.

Before timing, NVDM and the KG projection are trained for every ``beta`` and
``gamma`` grid value (``HybridRecommender.prepare``), so no measurement includes
that one-off training. Results go to ``benchmarks/results/throughput.json`` and
``throughput.md`` with the command, the machine and the date.

Usage::

    .venv/bin/python benchmarks/dqn_throughput.py [--episodes 20] [--device cuda]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from adaptrec.data import kfold_split, load_dataset
from adaptrec.evaluation.simulator import UserSimulator, drop_held_out
from adaptrec.hyperparams import HyperparamSpace
from adaptrec.models import HybridRecommender, ItemEmbeddings, ModelConfig
from adaptrec.tuning.dqn import DQNAgent, DQNConfig
from adaptrec.tuning.env import HyperparamTuningEnv

logger = logging.getLogger("benchmarks.dqn_throughput")

RESULTS = Path(__file__).resolve().parent / "results"
FULL_PROTOCOL_EPISODES = 100_000


def describe_machine(device: torch.device) -> dict[str, Any]:
    """Return cores, CPU model, memory, GPU and load of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_gib, 1),
        "gpu": gpu,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def measure_env_steps(env: HyperparamTuningEnv, steps: int) -> float:
    """Return environment steps/s under uniformly random actions."""
    env.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def measure_training(
    env: HyperparamTuningEnv, episodes: int, device: torch.device
) -> dict[str, Any]:
    """Train a fresh agent for ``episodes`` and return its step rate."""
    config = DQNConfig(
        episodes=episodes,
        learning_starts=min(1_000, episodes * env.episode_length // 4),
        device=str(device),
        seed=0,
    )
    agent = DQNAgent.for_env(env, config)
    history = agent.train(env, progress=True)
    full_hours = FULL_PROTOCOL_EPISODES * env.episode_length / history.steps_per_second
    return {
        "episodes": episodes,
        "steps": history.steps,
        "wall_time_s": round(history.wall_time_s, 2),
        "steps_per_second": round(history.steps_per_second, 1),
        "train_frequency": config.train_frequency,
        "batch_size": config.batch_size,
        "hidden_sizes": list(config.hidden_sizes),
        "full_protocol_hours_estimate": round(full_hours / 3600, 2),
    }


def measure_scoring(
    recommender: HybridRecommender, space: HyperparamSpace, batch_size: int, k: int
) -> float:
    """Return users/s of full-catalogue top-``k`` over every user, best of 3 runs."""
    users = torch.arange(recommender.n_users, device=recommender.device)
    hyperparams = space.initial()
    best = float("inf")
    for _ in range(3):
        _synchronize(recommender.device)
        started = time.perf_counter()
        for begin in range(0, len(users), batch_size):
            recommender.recommend(users[begin : begin + batch_size], hyperparams, k)
        _synchronize(recommender.device)
        best = min(best, time.perf_counter() - started)
    return len(users) / best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_results(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    machine = result["machine"]
    gpu = machine["gpu"] or "no GPU"
    training = result["dqn_training"]
    scoring = ", ".join(
        f"batch {row['batch_size']}: {row['users_per_second']:,.0f} users/s"
        for row in result["scoring"]
    )
    lines = [
        "# DQN environment and scoring throughput",
        "",
        f"Measured {result['date']} with `{result['command']}` on "
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB "
        f"memory, {gpu}, device {machine['device']}, {machine['torch_threads']} torch "
        f"threads, 1-minute load average {machine['load_average_1m']} at the start.",
        f"Dataset {result['dataset']}, ModelConfig.quick(), {result['users_per_step']} "
        f"users per step, {result['episode_length']} steps per episode, "
        f"{len(result['hyperparameters'])} hyperparameters.",
        "",
        f"- Environment steps/s (random actions): {result['env_steps_per_second']:.1f}",
        f"- DQN training steps/s ({training['episodes']} episodes, gradient step "
        f"every {training['train_frequency']} steps): "
        f"{training['steps_per_second']:.1f}; 100,000 episodes would take about "
        f"{training['full_protocol_hours_estimate']} h at this rate (extrapolated)",
        f"- Full-catalogue top-{result['k']} scoring: {scoring}",
        "",
    ]
    (RESULTS / "throughput.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--episodes", type=int, default=20, help="DQN training episodes to time"
    )
    parser.add_argument(
        "--env-steps", type=int, default=300, help="random-action steps to time"
    )
    parser.add_argument(
        "--episode-length", type=int, default=20, help="environment steps per episode"
    )
    parser.add_argument(
        "--users-per-step", type=int, default=64, help="users served per step"
    )
    parser.add_argument("--k", type=int, default=10, help="slate length in items")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[64, 256, 1024],
        help="users per recommend call when timing scoring",
    )
    parser.add_argument(
        "--hyperparams",
        default=None,
        help="hyperparameter space YAML; the packaged default when omitted",
    )
    parser.add_argument(
        "--device", default=None, help="torch device; CUDA when available, else CPU"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads; torch's default when omitted",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    device = torch.device(
        args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    machine = describe_machine(device)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    # Setup: data, the tuning recommender and simulator of fold 0, every component.
    dataset = load_dataset("ml-100k")
    fold = kfold_split(dataset, n_folds=5, seed=0)[0]
    space = HyperparamSpace.from_yaml(args.hyperparams)
    config = ModelConfig.quick()
    embeddings = ItemEmbeddings.compute(dataset, config)
    recommender = HybridRecommender.fit(
        dataset, fold.train, space, config, embeddings=embeddings, device=device
    )
    recommender.prepare()
    simulator = UserSimulator().fit(
        dataset, ratings=drop_held_out(dataset.ratings, fold.test), seed=0
    )
    env = HyperparamTuningEnv(
        recommender,
        simulator,
        space,
        k=args.k,
        users_per_step=args.users_per_step,
        episode_length=args.episode_length,
        seed=0,
    )

    # Measurements.
    env_rate = measure_env_steps(env, args.env_steps)
    logger.info("environment: %.1f steps/s with random actions", env_rate)
    training = measure_training(env, args.episodes, device)
    logger.info("DQN training: %.1f steps/s", training["steps_per_second"])
    scoring = []
    for batch_size in args.batch_sizes:
        rate = measure_scoring(recommender, space, batch_size, args.k)
        scoring.append({"batch_size": batch_size, "users_per_second": round(rate, 1)})
        logger.info("top-%d scoring, batch %d: %.0f users/s", args.k, batch_size, rate)

    write_results(
        {
            "date": started,
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "machine": machine,
            "dataset": dataset.name,
            "hyperparameters": space.names,
            "k": args.k,
            "users_per_step": args.users_per_step,
            "episode_length": args.episode_length,
            "env_steps": args.env_steps,
            "env_steps_per_second": round(env_rate, 1),
            "dqn_training": training,
            "scoring": scoring,
        }
    )
    logger.info("wrote %s", RESULTS / "throughput.json")


if __name__ == "__main__":
    main()
