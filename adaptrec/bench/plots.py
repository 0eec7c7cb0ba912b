"""PNG figures of BENCHMARKS.md, each captioned with its command, machine and date."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Headless: benchmarks run on servers and in CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from adaptrec.bench.environment import machine_line  # noqa: E402
from adaptrec.bench.hybrid import BASELINES, TUNER_LABELS  # noqa: E402


def _caption(figure: Any, provenance: Mapping[str, Any]) -> None:
    text = (
        f"{provenance['command']}  |  {provenance['date']}\n"
        f"{machine_line(provenance['machine'])}"
    )
    figure.text(0.01, 0.01, text, fontsize=6.5, color="0.35", va="bottom")


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_quality(quality: Mapping[str, Any], path: Path) -> None:
    """Plot NDCG@10 per model or tuner, mean with a bar of one standard deviation."""
    rows = [row for row in quality["summary"]["rows"] if row.get("tuner") != "initial"]
    names = [row["name"].removeprefix("adaptrec hybrid, ") for row in rows]
    means = [row["ndcg"]["mean"] for row in rows]
    stds = [row["ndcg"]["std"] for row in rows]
    colours = [
        "tab:blue" if row["source"] == "adaptrec" else "tab:gray" for row in rows
    ]

    figure, axis = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.8))
    positions = np.arange(len(rows))
    axis.barh(positions, means, xerr=stds, color=colours, capsize=3)
    axis.set_yticks(positions, names)
    axis.invert_yaxis()
    axis.set_xlabel("test NDCG@10 (mean ± std over folds)")
    axis.set_title("Hybrid (blue, by tuner) against RecBole (gray), identical folds")
    _caption(figure, quality)
    _save(figure, path)


def plot_ctr_per_day(tuners: Mapping[str, Any], path: Path) -> None:
    """Plot each tuner's CTR per simulated day, mean over (fold, seed) pairs."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for tuner, entry in tuners["summary"]["tuners"].items():
        style = "--" if tuner in ("initial", "dqn_online") else "-"
        axis.plot(
            entry["ctr_per_day"],
            style,
            marker="o",
            markersize=3,
            label=TUNER_LABELS[tuner],
        )
    axis.set_xlabel("simulated day")
    axis.set_ylabel("click-through rate")
    axis.set_title(
        f"CTR per day under preference drift, mean of "
        f"{tuners['summary']['pairs']} (fold, seed) pairs"
    )
    axis.legend(fontsize=8)
    _caption(figure, tuners)
    _save(figure, path)


def plot_paired_intervals(tuners: Mapping[str, Any], path: Path) -> None:
    """Plot each baseline's paired difference from the DQN with its 95% interval."""
    paired = tuners["summary"]["paired"]
    names = [name for name in (*BASELINES, "initial") if name in paired]
    figure, axes = plt.subplots(1, 2, figsize=(9, 0.4 * len(names) + 2.2))
    for axis, metric, label in zip(
        axes, ("ndcg", "ctr"), ("test NDCG@10", "CTR over the days"), strict=True
    ):
        for row, name in enumerate(names):
            interval = paired[name][metric]
            axis.plot(interval["mean"], row, "o", color="tab:blue")
            if interval["low"] is not None:
                axis.hlines(row, interval["low"], interval["high"], color="tab:blue")
        axis.axvline(0.0, color="0.5", linewidth=0.8)
        axis.set_yticks(range(len(names)), [TUNER_LABELS[n] for n in names])
        axis.invert_yaxis()
        axis.set_xlabel(f"{label}: baseline minus DQN")
    axes[1].set_yticklabels([])
    figure.suptitle("Paired differences from the DQN, 95% t-intervals")
    _caption(figure, tuners)
    _save(figure, path)
