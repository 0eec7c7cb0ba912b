"""Prometheus metrics of the model server.

The metrics live in prometheus_client's default registry, which kserve's own
``/metrics`` handler exposes next to kserve's request histograms. Every series
carries a ``model`` label, and the per-version counters a ``version`` label (the
hyperparameter set's content version, or ``cold-start``), so the click-through
rate per version is one PromQL ratio::

    sum by (version) (rate(adaptrec_clicks_total[5m]))
      / sum by (version) (rate(adaptrec_recommendations_total[5m]))

A recommendation served is one slate (the top-K list) for one user. A client
sends at most one click per slate, as the user simulator does, so the ratio is a
click-through rate per slate between 0 and 1.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECOMMENDATIONS = Counter(
    "adaptrec_recommendations_total",
    "Slates served: one top-K list for one user.",
    ["model", "version"],
)
CLICKS = Counter(
    "adaptrec_clicks_total",
    "Accepted click events, by the version that produced the clicked slate.",
    ["model", "version"],
)
COLD_START = Counter(
    "adaptrec_cold_start_recommendations_total",
    "Slates served to unknown users from the content and popularity ranking.",
    ["model"],
)
FEEDBACK_REJECTED = Counter(
    "adaptrec_feedback_rejected_total",
    "Feedback requests rejected, by the error class that rejected them.",
    ["model", "reason"],
)
REQUESTS_REJECTED = Counter(
    "adaptrec_requests_rejected_total",
    "Recommendation requests rejected, by the error class that rejected them.",
    ["model", "reason"],
)
ROLLOUT_RELOADS = Counter(
    "adaptrec_rollout_reloads_total",
    "Rollout files loaded and applied, the first load included.",
    ["model"],
)
ROLLOUT_RELOAD_ERRORS = Counter(
    "adaptrec_rollout_reload_errors_total",
    "Rollout file contents that could not be read or were invalid; counted once "
    "per distinct content.",
    ["model"],
)
ROLLOUT_INFO = Gauge(
    "adaptrec_rollout_info",
    "1 for each hyperparameter version in the active rollout, by role "
    "(stable or candidate).",
    ["model", "role", "version"],
)
CANARY_PERCENT = Gauge(
    "adaptrec_canary_percent",
    "Share of users (0..99) served with the candidate set.",
    ["model"],
)
REQUEST_DURATION = Histogram(
    "adaptrec_request_duration_seconds",
    "Time the model spends on a request (parsing, ranking, building the response; "
    "not HTTP or JSON decoding), by endpoint: predict_v1, predict_v2, feedback.",
    ["model", "endpoint"],
    # Sub-millisecond buckets, because a top-10 request over a few thousand items
    # takes well under 10 ms on one CPU core.
    buckets=(
        0.0005,
        0.001,
        0.002,
        0.003,
        0.005,
        0.0075,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
    ),
)
