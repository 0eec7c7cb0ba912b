"""The operator's own Prometheus metrics, served on their own port.

The default registry is used, so the process collector's
``process_resident_memory_bytes`` and CPU counters come along.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

ROUNDS = Counter(
    "adaptrec_operator_rounds_total",
    "Tuning rounds started, by the reason they started.",
    ["reason"],
)
DECISIONS = Counter(
    "adaptrec_operator_decisions_total",
    "Round and canary decisions, by outcome (Promote, Rollback, Extend, Hold, "
    "TrainingFailed, Unchanged).",
    ["outcome"],
)
ERRORS = Counter(
    "adaptrec_operator_errors_total",
    "Reconcile errors, by kind (conflict, api, invalid_spec, missing_dependency).",
    ["kind"],
)
RECONCILE_SECONDS = Histogram(
    "adaptrec_operator_reconcile_seconds",
    "Wall time of one reconcile of one policy.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def serve_metrics(port: int, address: str = "127.0.0.1") -> None:
    """Serve /metrics on ``address:port`` from a background thread."""
    start_http_server(port, addr=address)
