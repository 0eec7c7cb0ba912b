"""The canary decision: the z test, the no-data rules and the readiness gate."""

from __future__ import annotations

import dataclasses

import pytest

from adaptrec.operator.analysis import (
    CanaryFigures,
    Outcome,
    VersionCounts,
    _single_value,
    decide_canary,
    difference_bounds,
    render_query,
)
from adaptrec.operator.policy import DEFAULT_COUNT_QUERY_TEMPLATE


def _figures(stable_clicks, stable_n, candidate_clicks, candidate_n):
    return CanaryFigures(
        stable=VersionCounts(stable_clicks, stable_n),
        candidate=VersionCounts(candidate_clicks, candidate_n),
        window_seconds=60,
    )


@pytest.fixture
def rollout(spec):
    return dataclasses.replace(
        spec.rollout, min_samples=1000, max_regression=0.05, deadline=3600
    )


def test_better_candidate_promotes(rollout):
    decision = decide_canary(_figures(100, 2000, 160, 2000), rollout, 600, True)
    assert decision.outcome == Outcome.PROMOTE
    assert decision.reason == "NonInferior"
    assert decision.lower_bound > 0


def test_worse_candidate_rolls_back(rollout):
    decision = decide_canary(_figures(160, 2000, 100, 2000), rollout, 600, True)
    assert decision.outcome == Outcome.ROLLBACK
    assert decision.reason == "Regression"
    assert decision.upper_bound < 0


def test_close_call_extends_until_deadline(rollout):
    figures = _figures(100, 1000, 96, 1000)
    early = decide_canary(figures, rollout, 600, True)
    assert early.outcome == Outcome.EXTEND
    assert early.reason == "Inconclusive"
    late = decide_canary(figures, rollout, 3600, True)
    assert late.outcome == Outcome.ROLLBACK
    assert late.reason == "Inconclusive"


def test_too_few_samples_extends(rollout):
    decision = decide_canary(_figures(10, 200, 90, 200), rollout, 600, True)
    assert decision.outcome == Outcome.EXTEND
    assert decision.reason == "InsufficientSamples"


def test_too_few_samples_at_deadline_rolls_back(rollout):
    decision = decide_canary(_figures(10, 200, 90, 200), rollout, 3600, True)
    assert decision.outcome == Outcome.ROLLBACK


def test_no_data_holds_then_rolls_back(rollout):
    assert decide_canary(None, rollout, 600, True).outcome == Outcome.HOLD
    late = decide_canary(None, rollout, 3601, True)
    assert late.outcome == Outcome.ROLLBACK
    assert late.reason == "NoData"


def test_version_without_traffic_holds(rollout):
    decision = decide_canary(_figures(30, 300, 0, 0), rollout, 600, True)
    assert decision.outcome == Outcome.HOLD
    assert decision.reason == "NoData"


def test_unready_candidate_never_promotes(rollout):
    figures = _figures(100, 2000, 160, 2000)
    held = decide_canary(figures, rollout, 600, False)
    assert held.outcome == Outcome.HOLD
    assert held.reason == "CandidateNotReady"
    late = decide_canary(figures, rollout, 3600, False)
    assert late.outcome == Outcome.ROLLBACK
    assert late.reason == "CandidateNotReady"


def test_margin_allows_small_drop(rollout):
    # Candidate 2% worse relative to stable, with a 5% margin and large samples.
    figures = _figures(10_000, 100_000, 9_800, 100_000)
    assert decide_canary(figures, rollout, 600, True).outcome == Outcome.PROMOTE
    strict = dataclasses.replace(rollout, max_regression=0.0)
    assert decide_canary(figures, strict, 600, True).outcome != Outcome.PROMOTE


def test_zero_clicks_both_sides_is_not_a_promotion(rollout):
    strict = dataclasses.replace(rollout, max_regression=0.0)
    decision = decide_canary(_figures(0, 5000, 0, 5000), strict, 600, True)
    assert decision.outcome == Outcome.EXTEND


def test_bounds_narrow_with_more_samples():
    small = difference_bounds(VersionCounts(10, 100), VersionCounts(10, 100), 0.95, 0)
    large = difference_bounds(
        VersionCounts(1000, 10_000), VersionCounts(1000, 10_000), 0.95, 0
    )
    assert large[1] - large[0] < small[1] - small[0]


def test_bounds_widen_with_confidence():
    stable, candidate = VersionCounts(100, 1000), VersionCounts(110, 1000)
    low = difference_bounds(stable, candidate, 0.8, 0)
    high = difference_bounds(stable, candidate, 0.99, 0)
    assert high[0] < low[0]
    assert high[1] > low[1]


def test_clicks_above_recommendations_have_ctr():
    assert VersionCounts(0, 0).ctr is None
    assert VersionCounts(5, 10).ctr == 0.5


def test_query_template_filled_as_text():
    query = render_query(
        DEFAULT_COUNT_QUERY_TEMPLATE, "adaptrec_clicks_total", "m", "abc", "90s"
    )
    assert query == 'sum(increase(adaptrec_clicks_total{model="m",version="abc"}[90s]))'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"resultType": "vector", "result": [{"value": [1, "12.5"]}]}, 12.5),
        ({"resultType": "scalar", "result": [1, "3"]}, 3.0),
        ({"resultType": "vector", "result": []}, None),
        ({"resultType": "vector", "result": [{"value": [1, "NaN"]}]}, None),
        ({"resultType": "vector", "result": [{"value": [1, "+Inf"]}]}, None),
        ({"resultType": "vector", "result": [{"value": [1, "-1"]}]}, None),
        ({"resultType": "vector", "result": [{"value": [1, "x"]}]}, None),
        (
            {
                "resultType": "vector",
                "result": [{"value": [1, "1"]}, {"value": [1, "2"]}],
            },
            None,
        ),
        ({"resultType": "matrix", "result": []}, None),
    ],
)
def test_only_one_clean_number_is_data(data, expected):
    assert _single_value(data) == expected
