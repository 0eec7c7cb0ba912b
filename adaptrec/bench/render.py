"""Render BENCHMARKS.md from the stored JSON results of one ``adaptrec bench`` run.

Nothing on the page is typed by hand: tables, figures and the reading section come
from ``benchmarks/results/*.json``, and each section names the command, machine and
date of the numbers it shows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptrec.bench import reading, render_speed
from adaptrec.bench.environment import machine_line
from adaptrec.bench.hybrid import TUNER_LABELS

RESULTS = Path("benchmarks") / "results"
# Causes of a metric-check difference, read from RecBole 1.2.1's source.
CHECK_NOTES = {
    "Pop": "RecBole 1.2.1's Pop counts an item once per training batch that "
    "contains it (`item_cnt[item] = item_cnt[item] + 1` with repeated indices "
    "adds 1 once), not once per interaction as adaptrec's popularity ranking does, "
    "so the two rank items differently.",
}
PART_TITLES = {
    "quality": "Quality against RecBole",
    "tuners": "Tuners at an equal budget",
    "throughput": "DQN environment and scoring throughput",
    "features": "Online feature reads",
    "serving": "Model server against a bare FastAPI endpoint",
    "operator": "Operator on the local control plane",
}


def _cell(stat: Mapping[str, float]) -> str:
    if stat["n"] > 1:
        return f"{stat['mean']:.4f} ± {stat['std']:.4f}"
    return f"{stat['mean']:.4f}"


def _interval(interval: Mapping[str, Any]) -> str:
    if interval["low"] is None:
        return f"{interval['mean']:+.4f} (one pair, no interval)"
    return f"{interval['mean']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]"


def _chosen_points(per_fold: list[dict[str, Any]]) -> str:
    """Return each distinct chosen grid point with the number of folds that chose
    it, in order of first choice."""
    counts = Counter(
        ", ".join(f"{name}={value}" for name, value in params.items()) or "defaults"
        for params in per_fold
    )
    return "; ".join(f"{point} ({n}/{len(per_fold)})" for point, n in counts.items())


def _provenance(result: Mapping[str, Any]) -> str:
    return (
        f"Measured {result['date']} with `{result['command']}`, budget "
        f"`{result['budget']}`, on {machine_line(result['machine'])}."
    )


def _status_line(name: str, status: Mapping[str, Any]) -> list[str]:
    state = status["status"]
    if state == "skipped":
        return [f"Skipped: {status['reason']}", ""]
    if state == "failed":
        return [f"Failed: {status['reason']}", ""]
    if state == "not run":
        return ["Not run: this part was not selected and has no stored result.", ""]
    return []


def render_quality(quality: Mapping[str, Any]) -> list[str]:
    """Render the RecBole comparison table, the goal and the metric check."""
    summary = quality["summary"]
    setup = quality["setup"]
    lines = [
        _provenance(quality),
        "",
        f"MovieLens-100K, ratings >= {setup['positive_threshold']} as positives, the "
        f"first {setup['folds']} of the 5 folds of `kfold_split(seed=0)`. Each model "
        "trains on the training fold minus a 20% validation split "
        "(`validation_split(seed=fold)`), picks its hyperparameters on validation "
        "NDCG@10 and ranks the full catalogue for the test users with every "
        "training and validation item masked. The adaptrec rows are the hybrid "
        "recommender after each tuner (fitted on the whole training fold), averaged "
        "over seeds per fold; mean ± standard deviation over folds.",
        "",
    ]
    recbole = quality.get("recbole")
    if recbole and "models" in recbole:
        lines += [
            f"RecBole {recbole['recbole']} (torch {recbole['torch']}, "
            f"{recbole['device']}) in its own virtual environment, budget "
            f"`{recbole['budget']}`: at most {recbole['epochs']} epochs with early "
            f"stopping after {recbole['stopping_step']} epochs without a better "
            "validation NDCG@10, grids from each model's documentation page "
            f"(`hyper.test`); run time {recbole['wall_s'] / 60:.1f} min.",
            "",
        ]
    elif quality.get("recbole_skipped"):
        lines += [f"RecBole skipped: {quality['recbole_skipped']}", ""]

    lines += [
        "| model | NDCG@10 | Recall@10 | Precision@10 | grid points "
        "| chosen per fold |",
        "|---|---|---|---|---:|---|",
    ]
    for row in summary["rows"]:
        points = str(row.get("points", ""))
        chosen = _chosen_points(row.get("params", []))
        lines.append(
            f"| {row['name']} | {_cell(row['ndcg'])} | {_cell(row['recall'])} | "
            f"{_cell(row['precision'])} | {points} | {chosen} |"
        )
    lines.append("")
    for model, error in summary.get("recbole_failed", {}).items():
        lines += [f"RecBole {model} failed: {error}", ""]

    if summary.get("check"):
        lines += [
            "Metric check: adaptrec's reference model and RecBole's, fitted on the "
            "same training file and tested on the same fold, per fold.",
            "",
            "| model | metric | adaptrec | RecBole | max abs difference |",
            "|---|---|---|---|---:|",
        ]
        for model, entry in summary["check"].items():
            for metric, values in entry["metrics"].items():
                ours = ", ".join(f"{v:.4f}" for v in values["adaptrec"])
                theirs = ", ".join(f"{v:.4f}" for v in values["recbole"])
                lines.append(
                    f"| {model} | {metric}@10 | {ours} | {theirs} | "
                    f"{values['max_abs_difference']:.2e} |"
                )
        lines.append("")
        for model, entry in summary["check"].items():
            worst = max(m["max_abs_difference"] for m in entry["metrics"].values())
            if worst >= 1e-3 and model in CHECK_NOTES:
                lines += [f"{model}: {CHECK_NOTES[model]}", ""]
    lines += ["![NDCG@10 per model](benchmarks/results/quality_ndcg.png)", ""]
    return lines


def render_tuners(tuners: Mapping[str, Any]) -> list[str]:
    """Render the equal-budget table with paired intervals and its figures."""
    summary = tuners["summary"]
    budget = tuners["settings"]
    lines = [
        _provenance(tuners),
        "",
        f"Each tuner gets {budget['evaluations']} evaluations per fold and seed: "
        "GP Bayesian optimisation, Optuna TPE and random search evaluate "
        "validation NDCG@10 that many times, grid search evaluates the largest "
        "grid that fits (see its evaluations column), and the DQN takes as many "
        f"environment steps ({budget['users_per_step']} simulated users each) as "
        "score the same number of users, so its evaluations column counts users "
        "scored divided by the validation users. Wall-clock is measured, not "
        "capped; NVDM and the KG projection are trained for every grid value "
        "before any tuner starts. CTR is the mean over "
        f"{budget['days']} simulated days of preference drift with "
        f"{budget['users_per_day']} users a day, the same users and random draws "
        f"for every tuner. {summary['pairs']} (fold, seed) pairs; differences are "
        "baseline minus DQN with a 95% paired t-interval (pairs that share a fold "
        "are treated as independent, so the intervals are approximate).",
        "",
        "| tuner | test NDCG@10 | minus DQN [95% CI] | CTR | minus DQN [95% CI] | "
        "evaluations | wall-clock (s) |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for tuner, entry in summary["tuners"].items():
        paired = summary["paired"].get(tuner)
        ndcg_diff = _interval(paired["ndcg"]) if paired else "—"
        ctr_diff = _interval(paired["ctr"]) if paired else "—"
        lines.append(
            f"| {TUNER_LABELS[tuner]} | {_cell(entry['ndcg'])} | {ndcg_diff} | "
            f"{_cell(entry['ctr'])} | {ctr_diff} | "
            f"{entry['evaluations']['mean']:.1f} | {entry['wall_s']['mean']:.1f} |"
        )
    lines += [
        "",
        "The online DQN keeps learning from the scoring simulator's clicks during "
        "the simulated days, so it uses more than the equal budget; it is shown "
        "for reference and not compared.",
        "",
        "![CTR per simulated day](benchmarks/results/tuners_ctr_per_day.png)",
        "",
        "![Paired differences from the DQN](benchmarks/results/tuners_paired.png)",
        "",
    ]
    return lines


def render_page(index: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    """Return BENCHMARKS.md for the run ``index`` and the loaded ``results``."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{index['command']}` on {index['date']} (budget "
        f"`{index['budget']}`, {index['wall_s'] / 60:.1f} min) on "
        f"{machine_line(index['machine'])}. Every number here is rendered from the "
        "JSON files in `benchmarks/results/`; run `make bench` (or `adaptrec "
        "bench`) to regenerate the page and its figures.",
        "",
        "| part | status | wall-clock (s) |",
        "|---|---|---:|",
    ]
    for name, status in index["parts"].items():
        wall = status.get("wall_s")
        wall_text = f"{wall:.0f}" if wall is not None else ""
        state = status["status"]
        if state in ("skipped", "failed"):
            state += ": " + status["reason"].split(";")[0]
        lines.append(f"| {name} | {state} | {wall_text} |")
    lines.append("")

    renderers = {
        "quality": lambda: render_quality(results["quality"]),
        "tuners": lambda: render_tuners(results["tuners"]),
        "throughput": lambda: render_speed.render_throughput(results["throughput"]),
        "features": lambda: render_speed.render_features(results["features"]),
        "serving": lambda: render_speed.render_serving(results["serving"]),
        "operator": lambda: render_speed.render_operator(results["operator"]),
    }
    for name, render in renderers.items():
        status = index["parts"].get(name, {"status": "not run"})
        lines += [f"## {PART_TITLES[name]}", ""]
        if status["status"] == "reused":
            lines += [
                "Not run in this invocation; the stored result from an earlier run "
                "is shown.",
                "",
            ]
        if name in results:
            lines += render()
        else:
            lines += _status_line(name, status)

    lines += ["## Reading the results", ""]
    sentences: list[str] = []
    if "quality" in results:
        sentences += reading.read_quality(results["quality"]["summary"])
        sentences += reading.read_check(results["quality"]["summary"].get("check", {}))
    if "tuners" in results:
        sentences += reading.read_tuners(results["tuners"]["summary"])
    sentences += reading.read_speed(results)
    lines += [f"- {sentence}" for sentence in sentences] or ["No part produced data."]
    lines.append("")
    return "\n".join(lines)


def load_results(results_dir: Path, names: list[str]) -> dict[str, Any]:
    """Load each part's stored JSON; throughput maps device to result."""
    results: dict[str, Any] = {}
    for name in names:
        if name == "throughput":
            per_device = {
                path.stem.removeprefix("speed-throughput-"): json.loads(
                    path.read_text()
                )
                for path in sorted(results_dir.glob("speed-throughput-*.json"))
            }
            if per_device:
                results[name] = per_device
            continue
        stem = name if name in ("quality", "tuners") else f"speed-{name}"
        path = results_dir / f"{stem}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    return results
