"""Canary figures from a real Prometheus: counts, empty results, NaN and outages."""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from adaptrec.operator.analysis import PrometheusClient, query_ctr, query_figures
from adaptrec.operator.policy import parse_policy_spec
from adaptrec.rollout import Rollout
from tests.operator.cluster import ClickExporter
from tests.operator.conftest import example_policy
from tests.support.prometheus import free_port, start_prometheus, stop_prometheus

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def rollout_spec():
    policy = example_policy()
    spec = parse_policy_spec(policy["spec"], "recs")
    return spec, dataclasses.replace(spec.rollout, prometheus_url="unused")


@pytest.fixture(scope="module")
def scraped(tmp_path_factory, rollout_spec):
    spec, _ = rollout_spec
    stable = spec.space.initial()
    candidate = spec.space.validate({**stable.values_dict, "alpha": 0.8})
    exporter = ClickExporter(model=spec.target.model_name)
    exporter.serve(Rollout(stable, candidate, 50), {}, 0, random.Random(0))
    prometheus = start_prometheus(
        tmp_path_factory.mktemp("prometheus"), [exporter.target]
    )
    # The zero samples must be scraped before the traffic, or increase() has no
    # starting point for it.
    prometheus.wait_for("up", "job", lambda result: result.get("adaptrec") == 1.0)
    # Feast's metrics module switches prometheus_client to multiprocess mode for the
    # whole process once an earlier test materialises, and counters of the same name
    # and labels then share one value. So traffic is measured from a baseline.
    baseline = {v.version: _served(exporter, v.version) for v in (stable, candidate)}
    time.sleep(1.5)
    rng = random.Random(1)
    rates = {stable.version: 0.1, candidate.version: 0.3}
    for _ in range(4):
        time.sleep(1.0)
        exporter.serve(Rollout(stable, candidate, 50), rates, 250, rng)
    time.sleep(2.5)
    try:
        yield prometheus, exporter, stable, candidate, baseline
    finally:
        stop_prometheus(prometheus)
        exporter.close()


def _served(exporter, version):
    labels = (exporter.model, version)
    recommendations = exporter.recommendations.labels(*labels)._value.get()
    clicks = exporter.clicks.labels(*labels)._value.get()
    return recommendations, clicks


def test_counts_match_traffic(scraped, rollout_spec):
    prometheus, exporter, stable, candidate, baseline = scraped
    spec, rollout = rollout_spec
    client = PrometheusClient(prometheus.url)
    figures = query_figures(
        client, rollout, spec.target.model_name, stable.version, candidate.version, 60
    )
    assert figures is not None
    for counts, version in ((figures.stable, stable), (figures.candidate, candidate)):
        served, clicked = _served(exporter, version.version)
        served -= baseline[version.version][0]
        clicked -= baseline[version.version][1]
        assert counts.recommendations == pytest.approx(served, rel=0.15)
        assert counts.clicks == pytest.approx(clicked, rel=0.25)
    assert figures.candidate.ctr > figures.stable.ctr


def test_unknown_version_is_no_data(scraped, rollout_spec):
    prometheus, _, stable, _, _ = scraped
    spec, rollout = rollout_spec
    client = PrometheusClient(prometheus.url)
    figures = query_figures(
        client, rollout, spec.target.model_name, stable.version, "000000000000", 60
    )
    assert figures is None


def test_nan_ratio_is_no_data(scraped, rollout_spec):
    prometheus, _, _, _, _ = scraped
    spec, rollout = rollout_spec
    client = PrometheusClient(prometheus.url)
    # A real 0/0 from Prometheus: the ratio of two zero counts.
    assert client.query_scalar("vector(0) / vector(0)") is None
    nan_template = dataclasses.replace(
        rollout, ctr_query_template="sum(vector(0)) / sum(vector(0)) + 0 * {version}"
    )
    assert query_ctr(client, nan_template, spec.target.model_name, "x", 60) is None


def test_rejected_query_is_no_data(scraped):
    prometheus, _, _, _, _ = scraped
    assert PrometheusClient(prometheus.url).query_scalar("sum(") is None


def test_unreachable_prometheus_is_no_data(rollout_spec):
    spec, rollout = rollout_spec
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    assert client.query_scalar("vector(1)") is None
    assert query_figures(client, rollout, spec.target.model_name, "a", "b", 60) is None
