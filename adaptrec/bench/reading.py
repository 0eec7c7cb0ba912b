"""The "Reading the results" section: sentences generated from the numbers.

Each sentence is chosen by a condition on the stored results (a lead or a trail,
an interval that excludes zero or not), so the text claims no more than the tables
show. A difference within one standard deviation over folds is called a tie.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptrec.bench.hybrid import BASELINES, TUNER_LABELS


def _relative(value: float, reference: float) -> str:
    if reference == 0:
        return "n/a"
    return f"{(value / reference - 1.0):+.1%}"


def read_quality(summary: Mapping[str, Any]) -> list[str]:
    """Return sentences on where the DQN-tuned hybrid leads or trails RecBole."""
    rows = summary["rows"]
    dqn = next((row for row in rows if row.get("tuner") == "dqn"), None)
    recbole = [row for row in rows if row["source"] == "recbole"]
    if dqn is None or not recbole:
        return []
    leads, ties, trails = [], [], []
    for row in recbole:
        difference = dqn["ndcg"]["mean"] - row["ndcg"]["mean"]
        spread = max(dqn["ndcg"]["std"], row["ndcg"]["std"])
        text = f"{row['name']} ({_relative(dqn['ndcg']['mean'], row['ndcg']['mean'])})"
        if abs(difference) <= spread:
            ties.append(text)
        elif difference > 0:
            leads.append(text)
        else:
            trails.append(text)

    sentences = []
    if leads:
        sentences.append(
            "On test NDCG@10 the DQN-tuned hybrid leads " + ", ".join(leads) + "."
        )
    if trails:
        sentences.append("It trails " + ", ".join(trails) + ".")
    if ties:
        sentences.append(
            "It is within one standard deviation over folds of "
            + ", ".join(ties)
            + ", so those differences are not resolved at this number of folds."
        )
    best_ours = max(
        (row for row in rows if row["source"] == "adaptrec"),
        key=lambda row: row["ndcg"]["mean"],
    )
    best_recbole = max(recbole, key=lambda row: row["ndcg"]["mean"])
    if best_ours is not dqn:
        sentences.append(
            f"The best hybrid row ({TUNER_LABELS[best_ours['tuner']]}) scores "
            f"NDCG@10 {best_ours['ndcg']['mean']:.4f}, "
            f"{_relative(best_ours['ndcg']['mean'], best_recbole['ndcg']['mean'])} "
            f"against the best RecBole model ({best_recbole['name']})."
        )
    goal = summary.get("goal", {})
    if goal.get("evaluated"):
        verdict = "is met" if goal["met"] else "is not met"
        sentences.append(
            f"The goal of a {goal['lead']:.0%} lead over the best RecBole model "
            f"({goal['best_recbole']}, NDCG@10 {goal['best_recbole_ndcg']:.4f}) "
            f"{verdict}: the DQN-tuned hybrid scores {goal['dqn_ndcg']:.4f}, "
            f"{goal['relative_difference']:+.1%}."
        )
    return sentences


def read_check(check: Mapping[str, Any]) -> list[str]:
    """Return sentences on how closely adaptrec's and RecBole's metrics agree."""
    sentences = []
    for model, entry in check.items():
        worst = max(m["max_abs_difference"] for m in entry["metrics"].values())
        setting = ", ".join(f"{k} {v}" for k, v in entry["params"].items())
        setting = f" at {setting}" if setting else ""
        if worst < 1e-3:
            sentences.append(
                f"adaptrec's and RecBole's {model}{setting} agree to within "
                f"{worst:.1e} on every metric and fold, so the two compute the "
                "same NDCG@10, Recall@10 and Precision@10 on these folds."
            )
        else:
            sentences.append(
                f"adaptrec's and RecBole's {model}{setting} differ by up to "
                f"{worst:.4f} on one metric and fold; the check table lists each."
            )
    return sentences


def read_tuners(summary: Mapping[str, Any]) -> list[str]:
    """Return sentences on which baselines' paired differences from the DQN are
    resolved."""
    sentences = []
    pairs = summary["pairs"]
    for metric, label in (("ndcg", "test NDCG@10"), ("ctr", "simulated CTR")):
        resolved, unresolved = [], []
        for baseline in BASELINES:
            interval = summary["paired"].get(baseline, {}).get(metric)
            if interval is None:
                continue
            name = TUNER_LABELS[baseline]
            if interval["low"] is None:
                unresolved.append(f"{name} ({interval['mean']:+.4f})")
            elif interval["low"] > 0 or interval["high"] < 0:
                side = "above" if interval["mean"] > 0 else "below"
                resolved.append(
                    f"{name} is {side} the DQN by {abs(interval['mean']):.4f} "
                    f"(95% interval {interval['low']:+.4f} to "
                    f"{interval['high']:+.4f})"
                )
            else:
                unresolved.append(f"{name} ({interval['mean']:+.4f})")
        if resolved:
            sentences.append(
                f"On {label}, over {pairs} paired (fold, seed) runs: "
                + "; ".join(resolved)
                + "."
            )
        if unresolved:
            sentences.append(
                f"On {label}, the 95% intervals of "
                + ", ".join(unresolved)
                + " include zero, so those tuners and the DQN are not told apart "
                f"at {pairs} pairs."
            )
    return sentences


def read_speed(results: Mapping[str, Any]) -> list[str]:
    """Return one sentence each on the server and feature-store comparisons."""
    sentences = []
    serving = results.get("serving")
    if serving:
        model = serving["model_server"]
        bare = serving["bare_fastapi"]
        ratio = (
            model["max_throughput"]["throughput_rps"]
            / bare["max_throughput"]["throughput_rps"]
        )
        sentences.append(
            f"The model server sustains {model['max_throughput']['throughput_rps']} "
            f"requests/s, {ratio:.0%} of a bare FastAPI endpoint's "
            f"{bare['max_throughput']['throughput_rps']}, and its p99 latency at the "
            f"fixed rate is {model['fixed_rate']['latency_ms']['p99']} ms against "
            f"{bare['fixed_rate']['latency_ms']['p99']} ms."
        )
    throughput = results.get("throughput", {})
    for device, result in throughput.items():
        sentences.append(
            f"On {device}, DQN training runs at "
            f"{result['dqn_training']['steps_per_second']:.0f} environment steps/s "
            f"and full-catalogue top-10 scoring at up to "
            f"{max(row['users_per_second'] for row in result['scoring']):,.0f} "
            "users/s."
        )
    operator = results.get("operator")
    if operator:
        numbers = operator["results"]
        sentences.append(
            f"The operator creates a policy's tuning Job a median "
            f"{numbers['apply_to_job_s']['median']} s after `kubectl apply` and "
            f"holds {numbers['rss_mib']['max']} MiB resident with "
            f"{numbers['policies']} policies."
        )
    features = results.get("features")
    if features:
        one_user = {
            store: next(
                row
                for row in rows
                if row["users"] == 1 and row["call"].startswith("OnlineFeatureReader")
            )
            for store, rows in features["stores"].items()
        }
        if {"sqlite", "redis"} <= one_user.keys():
            faster = min(one_user, key=lambda store: one_user[store]["p99_ms"])
            sentences.append(
                f"For one user, the SQLite online store reads at p99 "
                f"{one_user['sqlite']['p99_ms']} ms and Redis at "
                f"{one_user['redis']['p99_ms']} ms; {faster} has the lower tail here."
            )
    return sentences
