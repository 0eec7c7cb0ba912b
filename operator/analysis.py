"""Canary analysis: click-through per version from Prometheus, and the decision.

The operator asks Prometheus for clicks and recommendations served per
hyperparameter version, counted with ``increase(...)`` over the time since the
canary started. A one-sided two-proportion z test decides whether the candidate's
click-through is no worse than the stable one's by more than ``maxRegression``
(a share of the stable click-through). Anything that is not a clean number (no
series, NaN, an error or an unreachable server) counts as no data, which never
promotes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

import httpx

from adaptrec.operator.policy import (
    CLICKS_METRIC,
    RECOMMENDATIONS_METRIC,
    RolloutSpec,
    format_window,
)

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 5.0


class Outcome(StrEnum):
    """What a canary analysis decides."""

    PROMOTE = "Promote"
    ROLLBACK = "Rollback"
    EXTEND = "Extend"
    HOLD = "Hold"


@dataclass(frozen=True)
class VersionCounts:
    """Clicks and recommendations served for one version over the window."""

    clicks: float
    recommendations: float

    @property
    def ctr(self) -> float | None:
        if self.recommendations <= 0:
            return None
        return self.clicks / self.recommendations


@dataclass(frozen=True)
class CanaryFigures:
    """Counts for the stable and the candidate version over one window."""

    stable: VersionCounts
    candidate: VersionCounts
    window_seconds: float


@dataclass(frozen=True)
class Decision:
    """An analysis outcome with a CamelCase reason and a sentence for humans."""

    outcome: Outcome
    reason: str
    message: str
    lower_bound: float | None = None
    upper_bound: float | None = None


class PrometheusClient:
    """A minimal client for Prometheus's instant-query HTTP API."""

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query_scalar(self, promql: str) -> float | None:
        """Run an instant query and return its single value.

        Returns None when Prometheus is unreachable, returns an error, or the result
        is empty, not a single series, or not a finite number.
        """
        try:
            response = httpx.get(
                f"{self.url}/api/v1/query",
                params={"query": promql},
                timeout=self.timeout,
            )
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("Prometheus query failed (%s): %s", promql, error)
            return None
        if document.get("status") != "success":
            log.warning(
                "Prometheus rejected %s: %s", promql, document.get("error", document)
            )
            return None
        return _single_value(document.get("data") or {})


def _single_value(data: dict) -> float | None:
    result_type = data.get("resultType")
    result = data.get("result")
    if result_type == "scalar" and isinstance(result, list) and len(result) == 2:
        raw = result[1]
    elif result_type == "vector" and isinstance(result, list) and len(result) == 1:
        sample = result[0].get("value")
        if not isinstance(sample, list) or len(sample) != 2:
            return None
        raw = sample[1]
    else:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def render_query(template: str, metric: str, model: str, version: str, window: str):
    """Fill the query template's placeholders as plain text."""
    return (
        template.replace("{metric}", metric)
        .replace("{model}", model)
        .replace("{version}", version)
        .replace("{window}", window)
    )


def query_counts(
    client: PrometheusClient,
    rollout: RolloutSpec,
    model: str,
    version: str,
    window_seconds: float,
) -> VersionCounts | None:
    """Return clicks and recommendations for ``version``, or None without data."""
    window = format_window(window_seconds)
    values = []
    for metric in (CLICKS_METRIC, RECOMMENDATIONS_METRIC):
        promql = render_query(
            rollout.count_query_template, metric, model, version, window
        )
        value = client.query_scalar(promql)
        if value is None:
            return None
        values.append(value)
    clicks, recommendations = values
    if clicks > recommendations:
        # increase() extrapolates both counters independently, so on tiny counts
        # the clicks can overshoot; a click-through above 1 is not a measurement.
        clicks = recommendations
    return VersionCounts(clicks=clicks, recommendations=recommendations)


def query_figures(
    client: PrometheusClient,
    rollout: RolloutSpec,
    model: str,
    stable_version: str,
    candidate_version: str,
    window_seconds: float,
) -> CanaryFigures | None:
    """Return counts for both versions, or None if either has no data."""
    stable = query_counts(client, rollout, model, stable_version, window_seconds)
    if stable is None:
        return None
    candidate = query_counts(client, rollout, model, candidate_version, window_seconds)
    if candidate is None:
        return None
    return CanaryFigures(
        stable=stable, candidate=candidate, window_seconds=window_seconds
    )


def query_ctr(
    client: PrometheusClient,
    rollout: RolloutSpec,
    model: str,
    version: str,
    window_seconds: float,
) -> float | None:
    """Return one version's click-through from the policy's ``queryTemplate``."""
    promql = render_query(
        rollout.ctr_query_template, "", model, version, format_window(window_seconds)
    )
    value = client.query_scalar(promql)
    if value is None or value > 1:
        return None
    return value


def difference_bounds(
    stable: VersionCounts,
    candidate: VersionCounts,
    confidence: float,
    max_regression: float,
) -> tuple[float, float]:
    """Return one-sided confidence bounds for the canary test, at ``confidence``.

    The lower bound is for ``ctr(candidate) - (1 - max_regression) * ctr(stable)``:
    above 0, the candidate's click-through is no worse than the stable one's by
    more than the relative margin ``max_regression`` (non-inferiority). The upper
    bound is for ``ctr(candidate) - ctr(stable)``: below 0, the candidate is
    significantly worse. Both use the Agresti-Caffo adjustment (one click and one
    non-click added to each version), so the standard error stays positive when
    a version has no clicks or only clicks.
    """
    n_s = stable.recommendations + 2
    n_c = candidate.recommendations + 2
    p_s = (stable.clicks + 1) / n_s
    p_c = (candidate.clicks + 1) / n_c
    z = NormalDist().inv_cdf(confidence)
    keep = 1.0 - max_regression
    margin_error = math.sqrt(p_c * (1 - p_c) / n_c + keep**2 * p_s * (1 - p_s) / n_s)
    plain_error = math.sqrt(p_c * (1 - p_c) / n_c + p_s * (1 - p_s) / n_s)
    lower = p_c - keep * p_s - z * margin_error
    upper = p_c - p_s + z * plain_error
    return lower, upper


def decide_canary(
    figures: CanaryFigures | None,
    rollout: RolloutSpec,
    elapsed_seconds: float,
    candidate_ready: bool,
) -> Decision:
    """Decide what to do with a running canary. A pure function of its inputs.

    No data (including a version that has served nothing) holds, and rolls back
    at the deadline. Too few samples extends. A significant regression that is
    not also within the margin rolls back. Non-inferiority promotes, but only
    when the candidate is ready. Anything else extends until the deadline, where
    it rolls back.
    """
    past_deadline = elapsed_seconds >= rollout.deadline
    if figures is not None and not (
        figures.stable.recommendations > 0 and figures.candidate.recommendations > 0
    ):
        # Series that exist but count nothing yet (a server exports its counters
        # at 0 before any user arrives) are no data either.
        figures = None
    if figures is None:
        if past_deadline:
            return Decision(
                Outcome.ROLLBACK,
                "NoData",
                "Prometheus returned no click-through data before the deadline",
            )
        return Decision(
            Outcome.HOLD, "NoData", "no click-through data from Prometheus yet"
        )

    stable, candidate = figures.stable, figures.candidate
    samples = min(stable.recommendations, candidate.recommendations)
    if samples < rollout.min_samples:
        message = (
            f"{candidate.recommendations:.0f} candidate and "
            f"{stable.recommendations:.0f} stable recommendations; "
            f"{rollout.min_samples} of each are needed"
        )
        if past_deadline:
            return Decision(Outcome.ROLLBACK, "InsufficientSamples", message)
        return Decision(Outcome.EXTEND, "InsufficientSamples", message)

    lower, upper = difference_bounds(
        stable, candidate, rollout.confidence, rollout.max_regression
    )
    figures_text = (
        f"candidate CTR {candidate.ctr:.4f} (n={candidate.recommendations:.0f}), "
        f"stable CTR {stable.ctr:.4f} (n={stable.recommendations:.0f}), "
        f"bounds {lower:.4f} (non-inferiority) and {upper:.4f} (regression) "
        f"at confidence {rollout.confidence:g}"
    )
    if upper < 0 and lower <= 0:
        return Decision(Outcome.ROLLBACK, "Regression", figures_text, lower, upper)
    if lower > 0:
        if candidate_ready:
            return Decision(Outcome.PROMOTE, "NonInferior", figures_text, lower, upper)
        if past_deadline:
            return Decision(
                Outcome.ROLLBACK,
                "CandidateNotReady",
                f"the candidate was not ready by the deadline; {figures_text}",
                lower,
                upper,
            )
        return Decision(
            Outcome.HOLD,
            "CandidateNotReady",
            f"non-inferior but the candidate is not ready; {figures_text}",
            lower,
            upper,
        )
    if past_deadline:
        return Decision(Outcome.ROLLBACK, "Inconclusive", figures_text, lower, upper)
    return Decision(Outcome.EXTEND, "Inconclusive", figures_text, lower, upper)
