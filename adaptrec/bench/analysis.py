"""Turn raw benchmark runs into the summaries that BENCHMARKS.md shows.

Every function here is pure: it reads the dictionaries that the parts produce and
returns JSON-ready summaries, which are stored next to the raw numbers so that the
page is rendered from the stored JSON alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptrec.bench.hybrid import BASELINES, TUNER_LABELS
from adaptrec.bench.recbole import CHECK_EASE_LAMBDA, recbole_point_metrics
from adaptrec.bench.stats import mean_std, paired_t_interval

METRICS = ("ndcg", "recall", "precision")
# The relative NDCG@10 lead over the best RecBole model that the quality goal
# sets for the DQN-tuned hybrid.
GOAL_LEAD = 0.05


def per_fold_metrics(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, dict]]:
    """Average each tuner's test metrics over seeds, per fold."""
    collected: dict[str, dict[int, list[dict[str, float]]]] = {}
    for run in runs:
        for tuner, result in run["tuners"].items():
            collected.setdefault(tuner, {}).setdefault(run["fold"], []).append(
                result["metrics"]
            )
    return {
        tuner: {
            fold: {
                metric: float(np.mean([m[metric] for m in metrics]))
                for metric in METRICS
            }
            for fold, metrics in folds.items()
        }
        for tuner, folds in collected.items()
    }


def summarise_tuners(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summarise the equal-budget comparison over every (fold, seed) pair.

    Returns, per tuner, the mean and standard deviation of test NDCG@10 and of CTR
    (mean over the simulated days), the mean CTR per day, and the evaluations and
    wall-clock used. For each baseline it adds the paired t-interval of its
    difference from the DQN.
    """
    runs = sorted(runs, key=lambda run: (run["fold"], run["seed"]))
    tuners = [name for name in TUNER_LABELS if name in runs[0]["tuners"]]
    ndcg = {t: [run["tuners"][t]["metrics"]["ndcg"] for run in runs] for t in tuners}
    ctr = {
        t: [float(np.mean(run["tuners"][t]["ctr_per_day"])) for run in runs]
        for t in tuners
    }
    summary: dict[str, Any] = {"pairs": len(runs), "tuners": {}, "paired": {}}
    for tuner in tuners:
        summary["tuners"][tuner] = {
            "ndcg": mean_std(ndcg[tuner]),
            "ctr": mean_std(ctr[tuner]),
            "ctr_per_day": np.mean(
                [run["tuners"][tuner]["ctr_per_day"] for run in runs], axis=0
            ).tolist(),
            "evaluations": mean_std(
                [run["tuners"][tuner]["evaluations"] for run in runs]
            ),
            "wall_s": mean_std([run["tuners"][tuner]["wall_s"] for run in runs]),
        }
    for baseline in (*BASELINES, "initial"):
        if baseline not in tuners:
            continue
        summary["paired"][baseline] = {
            "ndcg": paired_t_interval(ndcg[baseline], ndcg["dqn"]),
            "ctr": paired_t_interval(ctr[baseline], ctr["dqn"]),
        }
    return summary


def summarise_quality(
    hybrid_runs: Sequence[Mapping[str, Any]],
    recbole: Mapping[str, Any] | None,
    reference: Mapping[str, list[dict[str, float]]] | None,
) -> dict[str, Any]:
    """Build the quality table: every RecBole model and the hybrid with each tuner,
    mean and standard deviation over folds, plus the metric check and the goal."""
    rows: list[dict[str, Any]] = []
    folds = per_fold_metrics(hybrid_runs)
    for tuner, label in TUNER_LABELS.items():
        if tuner not in folds:
            continue
        values = list(folds[tuner].values())
        rows.append(
            {
                "name": f"adaptrec hybrid, {label}",
                "source": "adaptrec",
                "tuner": tuner,
                "folds": len(values),
                **{metric: mean_std([v[metric] for v in values]) for metric in METRICS},
            }
        )

    recbole_rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for model, entry in (recbole or {}).get("models", {}).items():
        if "error" in entry:
            failed[model] = entry["error"]
            continue
        tests = [fold["test"] for fold in entry["folds"]]
        recbole_rows.append(
            {
                "name": f"RecBole {model}",
                "source": "recbole",
                "model": model,
                "folds": len(tests),
                "points": entry["points"],
                "params": [fold["params"] for fold in entry["folds"]],
                **{
                    metric: mean_std([test[f"{metric}@10"] for test in tests])
                    for metric in METRICS
                },
            }
        )
    rows += sorted(recbole_rows, key=lambda row: -row["ndcg"]["mean"])

    summary: dict[str, Any] = {"rows": rows, "recbole_failed": failed}
    summary["check"] = metric_check(recbole, reference)
    summary["goal"] = quality_goal(rows)
    return summary


def metric_check(
    recbole: Mapping[str, Any] | None,
    reference: Mapping[str, list[dict[str, float]]] | None,
) -> dict[str, Any]:
    """Compare adaptrec's metrics with RecBole's for the same model, setting and
    training file, fold by fold."""
    if not recbole or not reference:
        return {}
    points = {"EASE": {"reg_weight": CHECK_EASE_LAMBDA}, "Pop": {}}
    check: dict[str, Any] = {}
    for model, params in points.items():
        theirs = recbole_point_metrics(recbole, model, params)
        ours = reference.get(model)
        if theirs is None or ours is None:
            continue
        ours = ours[: len(theirs)]
        check[model] = {"params": params, "metrics": {}}
        for metric in METRICS:
            key = f"{metric}@10"
            differences = [o[key] - t[key] for o, t in zip(ours, theirs, strict=True)]
            check[model]["metrics"][metric] = {
                "adaptrec": [o[key] for o in ours],
                "recbole": [t[key] for t in theirs],
                "max_abs_difference": float(np.max(np.abs(differences))),
                "mean_difference": float(np.mean(differences)),
            }
    return check


def quality_goal(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Check whether the DQN-tuned hybrid leads the best RecBole model on NDCG@10
    by at least :data:`GOAL_LEAD`."""
    dqn = next((row for row in rows if row.get("tuner") == "dqn"), None)
    recbole = [row for row in rows if row["source"] == "recbole"]
    if dqn is None or not recbole:
        return {"evaluated": False, "lead": GOAL_LEAD}
    best = max(recbole, key=lambda row: row["ndcg"]["mean"])
    ratio = dqn["ndcg"]["mean"] / best["ndcg"]["mean"]
    return {
        "evaluated": True,
        "lead": GOAL_LEAD,
        "dqn_ndcg": dqn["ndcg"]["mean"],
        "best_recbole": best["name"],
        "best_recbole_ndcg": best["ndcg"]["mean"],
        "relative_difference": ratio - 1.0,
        "met": ratio - 1.0 >= GOAL_LEAD,
    }
