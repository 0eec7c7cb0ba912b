"""BENCHMARKS.md sections for the speed parts, rendered from each script's JSON.

The component scripts describe their machines with slightly different keys, so
:func:`source_line` reads whichever of them a result has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def source_line(result: Mapping[str, Any]) -> str:
    """Return 'Measured DATE with `COMMAND` on MACHINE.' for one script's result."""
    machine = result.get("machine", {})
    cpu = machine.get("cpu") or machine.get("cpu_model") or "unknown CPU"
    parts = [f"{machine.get('cores', '?')} cores ({cpu})"]
    if "memory_gib" in machine:
        parts.append(f"{machine['memory_gib']} GiB memory")
    parts.append(machine.get("gpu") or "no GPU")
    load = machine.get("load_average_1m", machine.get("load_average_1m_at_start"))
    if load is None and result.get("load_average_before"):
        load = result["load_average_before"][0]
    if load is not None:
        parts.append(f"1-minute load average {float(load):.2f} at the start")
    return (
        f"Measured {result.get('date', '?')} with `{result.get('command', '?')}` on "
        f"{', '.join(parts)}."
    )


def render_throughput(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Render DQN environment steps/s and scoring users/s, one row per device."""
    lines = [
        "| device | environment steps/s (random actions) | DQN training steps/s | "
        "top-10 scoring users/s (batch size) |",
        "|---|---:|---:|---|",
    ]
    for device, result in results.items():
        scoring = ", ".join(
            f"{row['users_per_second']:,.0f} ({row['batch_size']})"
            for row in result["scoring"]
        )
        lines.append(
            f"| {device} | {result['env_steps_per_second']:.1f} | "
            f"{result['dqn_training']['steps_per_second']:.1f} | {scoring} |"
        )
    lines.append("")
    for device, result in results.items():
        lines.append(f"{device}: {source_line(result)}")
    lines.append("")
    return lines


def render_features(result: Mapping[str, Any]) -> list[str]:
    """Render online feature read latency per store, call and batch size."""
    lines = [
        "| online store | users per read | call | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|",
    ]
    for store, rows in result["stores"].items():
        for row in rows:
            lines.append(
                f"| {store} | {row['users']} | `{row['call']}` | {row['p50_ms']} | "
                f"{row['p99_ms']} |"
            )
    goal = result.get("goal")
    lines.append("")
    if goal:
        verdict = "met" if goal["met"] else "missed"
        lines.append(
            f"Goal: p99 under {goal['p99_ms']} ms for one user on SQLite through "
            f"`OnlineFeatureReader`: measured {goal['measured_p99_ms']} ms, {verdict}."
        )
        lines.append("")
    lines += [source_line(result), ""]
    return lines


def render_serving(result: Mapping[str, Any]) -> list[str]:
    """Render the model server against the bare FastAPI endpoint, both phases."""
    lines = [
        "| server | phase | requests/s | p50 ms | p99 ms | failures |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for server, label in (("model_server", "model server"), ("bare_fastapi", "bare")):
        for phase, phase_label in (
            ("fixed_rate", "fixed rate"),
            ("max_throughput", "max throughput"),
        ):
            row = result[server][phase]
            latency = row["latency_ms"]
            lines.append(
                f"| {label} | {phase_label} | {row['throughput_rps']} | "
                f"{latency['p50']} | {latency['p99']} | {row['failures']} |"
            )
    goal = result.get("goal")
    lines.append("")
    if goal:
        lines.append(
            f"Goals: p99 under {goal['p99_ms_limit']} ms at {goal['rate_rps']:.0f} "
            f"requests/s: measured {goal['p99_ms']} ms, "
            f"{'met' if goal['p99_met'] else 'missed'}. Max throughput at least "
            f"{goal['throughput_ratio_min']:.0%} of the bare endpoint's: measured "
            f"{goal['throughput_ratio']:.0%}, "
            f"{'met' if goal['throughput_met'] else 'missed'}."
        )
        lines.append("")
    lines += [source_line(result), ""]
    return lines


def render_operator(result: Mapping[str, Any]) -> list[str]:
    """Render apply-to-Job latency, memory and reconcile latency."""
    numbers = result["results"]
    policies = numbers["policies"]
    lines = [
        "| measure | value |",
        "|---|---:|",
        f"| apply to Job created, median of {len(numbers['apply_to_job_s']['samples'])}"
        f" (s) | {numbers['apply_to_job_s']['median']} |",
        f"| operator RSS, idle (MiB) | {numbers['idle_rss_mib']} |",
        f"| operator RSS with {policies} policies, max (MiB) | "
        f"{numbers['rss_mib']['max']} |",
        f"| {policies} policies applied to every Job created (s) | "
        f"{numbers['all_jobs_created_s']} |",
        f"| reconciles per second over {numbers['window_s']} s | "
        f"{numbers['reconciles_per_second']} |",
        f"| reconcile latency p50 / p99 (s, from histogram buckets) | "
        f"{numbers['reconcile_s']['p50']} / {numbers['reconcile_s']['p99']} |",
        "",
        source_line(result),
        "",
    ]
    return lines
