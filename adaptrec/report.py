"""Write the run report: report.md, metrics.json, the chosen sets and PNG plots.

The report is generated only from the results dictionary that
:func:`adaptrec.pipeline.run_pipeline` returns, so every number in it comes from the
run that wrote it.
"""

from __future__ import annotations

import json
import logging
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Headless: reports are written on servers and in CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

# Display names, in report column order.
TUNER_LABELS = {
    "initial": "untuned (initial set)",
    "grid": "grid search",
    "bayes": "Bayesian optimisation",
    "dqn": "DQN (frozen)",
    "dqn_online": "DQN (online)",
}
METRIC_LABELS = {
    "precision": "Precision@{k}",
    "recall": "Recall@{k}",
    "ndcg": "NDCG@{k}",
    "ctr": "CTR, {days} simulated days",
}


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Return the mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": len(array)}


def summarise_folds(folds: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Aggregate each tuner's per-fold metrics into mean and std over folds."""
    summary: dict[str, dict[str, Any]] = {}
    for tuner in TUNER_LABELS:
        per_fold = [fold["tuners"][tuner] for fold in folds if tuner in fold["tuners"]]
        if not per_fold:
            continue
        entry: dict[str, Any] = {}
        for metric in ("precision", "recall", "ndcg"):
            values = [result["metrics"][metric] for result in per_fold]
            entry[metric] = summarise(values)
        entry["ctr"] = summarise([float(np.mean(r["ctr_per_day"])) for r in per_fold])
        entry["ctr_per_day"] = np.mean(
            [r["ctr_per_day"] for r in per_fold], axis=0
        ).tolist()
        entry["evaluations"] = summarise([r["budget"]["evaluations"] for r in per_fold])
        entry["wall_s"] = summarise([r["budget"]["wall_s"] for r in per_fold])
        summary[tuner] = entry
    return summary


def _cell(stat: Mapping[str, float], digits: int = 4) -> str:
    if stat["n"] > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def render_markdown(results: Mapping[str, Any]) -> str:
    """Render report.md from a results dictionary."""
    config = results["config"]
    summary = results["summary"]
    k = config["k"]
    days = config["days"]
    tuners = [name for name in TUNER_LABELS if name in summary]

    lines = [
        "# adaptrec run report",
        "",
        f"Dataset **{results['dataset']['name']}**: "
        f"{results['dataset']['n_users']} users, {results['dataset']['n_items']} "
        f"items, {results['dataset']['n_positives']} positives (rating >= "
        f"{results['dataset']['positive_threshold']}), "
        f"{results['dataset']['n_kg_triples']} knowledge-graph triples.",
        f"Preset `{config['preset']}`, {len(results['folds'])} of "
        f"{config['n_folds']} folds, seed {config['seed']}, device "
        f"`{results['machine']['device']}`. "
        f"Wall time {results['wall_time_s'] / 60:.1f} min.",
        "",
        f"Mean ± standard deviation over folds. Ranking metrics are computed over the "
        f"full catalogue minus each user's training items, on the test fold. CTR is "
        f"the share of served top-{k} slates that the user simulator clicked, "
        f"averaged over {days} simulated days of preference drift.",
        "",
        "| metric | " + " | ".join(TUNER_LABELS[t] for t in tuners) + " |",
        "|---|" + "---|" * len(tuners),
    ]
    for metric, label in METRIC_LABELS.items():
        cells = [_cell(summary[t][metric]) for t in tuners]
        lines.append(f"| {label.format(k=k, days=days)} | " + " | ".join(cells) + " |")
    lines.append(
        "| evaluations per fold | "
        + " | ".join(f"{summary[t]['evaluations']['mean']:.0f}" for t in tuners)
        + " |"
    )
    lines.append(
        "| tuning wall time per fold (s) | "
        + " | ".join(f"{summary[t]['wall_s']['mean']:.1f}" for t in tuners)
        + " |"
    )
    lines += [
        "",
        "Budgets: an evaluation is one full validation ranking (NDCG@10 on a "
        "validation split carved from the training fold) for grid search and "
        "Bayesian optimisation, and one environment step (one batch of simulated "
        "users served and clicked) for the DQN. The online DQN keeps learning from "
        "the scoring simulator's clicks during the simulated days; its evaluations "
        "count those extra steps.",
        "",
        "## Click-through per simulated day",
        "",
        "| day | " + " | ".join(TUNER_LABELS[t] for t in tuners) + " |",
        "|---|" + "---|" * len(tuners),
    ]
    for day in range(days):
        cells = [f"{summary[t]['ctr_per_day'][day]:.4f}" for t in tuners]
        lines.append(f"| {day} | " + " | ".join(cells) + " |")

    lines += ["", "## Chosen hyperparameter sets", ""]
    for fold in results["folds"]:
        lines.append(f"Fold {fold['index']}:")
        lines.append("")
        for tuner in tuners:
            chosen = fold["tuners"][tuner]["hyperparams"]
            values = ", ".join(f"{k_}={v:g}" for k_, v in chosen["values"].items())
            lines.append(f"- {TUNER_LABELS[tuner]} `{chosen['version']}`: {values}")
        lines.append("")

    simulator = results.get("simulator")
    if simulator:
        lines += ["## User simulator", ""]
        for key, value in simulator.items():
            lines.append(f"- {key}: {value}")
        lines.append("")

    lines += [
        "## Plots",
        "",
        "![DQN reward per episode](dqn_reward.png)",
        "",
        "![DQN hyperparameter trajectories](dqn_hyperparams.png)",
        "",
        "![CTR per simulated day](ctr_per_day.png)",
        "",
        "## Reproduce",
        "",
        f"```\n{results['command']}\n```",
        "",
        f"Machine: {results['machine']['description']}.",
        "",
    ]
    return "\n".join(lines)


def _plot_reward(results: Mapping[str, Any], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    for fold in results["folds"]:
        rewards = np.asarray(fold["dqn_history"]["episode_reward"], dtype=float)
        if len(rewards) == 0:
            continue
        window = max(1, len(rewards) // 50)
        smooth = np.convolve(rewards, np.ones(window) / window, mode="valid")
        axis.plot(smooth, label=f"fold {fold['index']}")
    axis.set_xlabel("episode")
    axis.set_ylabel("mean reward per step (moving average)")
    axis.set_title("DQN training reward")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_trajectories(results: Mapping[str, Any], path: Path) -> None:
    fold = results["folds"][0]
    trajectory = fold["dqn_history"]["hyperparams"]
    names = list(trajectory)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows))
    for axis, name in zip(np.atleast_1d(axes).ravel(), names, strict=False):
        axis.plot(trajectory[name], linewidth=0.8)
        axis.set_title(name)
        axis.set_xlabel("episode")
    for axis in np.atleast_1d(axes).ravel()[len(names) :]:
        axis.axis("off")
    figure.suptitle(
        f"DQN hyperparameters at the end of each episode (fold {fold['index']})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_ctr(results: Mapping[str, Any], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    for tuner, entry in results["summary"].items():
        axis.plot(entry["ctr_per_day"], marker="o", label=TUNER_LABELS[tuner])
    axis.set_xlabel("simulated day")
    axis.set_ylabel("click-through rate")
    axis.set_title("CTR per simulated day (mean over folds)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(results: dict[str, Any], output: Path) -> Path:
    """Write report.md, metrics.json, hyperparams/*.json and plots into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    sets_dir = output / "hyperparams"
    sets_dir.mkdir(exist_ok=True)
    for fold in results["folds"]:
        for tuner, result in fold["tuners"].items():
            path = sets_dir / f"{tuner}-fold{fold['index']}.json"
            path.write_text(json.dumps(result["hyperparams"], indent=2) + "\n")

    (output / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot_reward(results, output / "dqn_reward.png")
    _plot_trajectories(results, output / "dqn_hyperparams.png")
    _plot_ctr(results, output / "ctr_per_day.png")
    report = output / "report.md"
    report.write_text(render_markdown(results))
    log.info("wrote %s", report)
    return report


def describe_machine(device: str) -> dict[str, str]:
    """Describe the machine a run used, for the report's reproduce section."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB memory"
    except (ValueError, OSError):
        pass
    description = f"{os.cpu_count()} cores ({cpu}){memory}, device {device}"
    return {"device": device, "description": description}
