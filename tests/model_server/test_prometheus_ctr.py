"""Click-through rate per version, as a real Prometheus computes it from two servers.

Two ``adaptrec serve`` processes on loopback ports serve everyone with set A and
set B, as the stable and canary pods of one model would. Simulated users request
slates over HTTP and click on a known share of them (30% of A's slates, 10% of
B's, 20% of cold-start ones), and Prometheus, scraping both every second, must
return the click-through rate that the traffic produced.

Each counter series starts at zero before the traffic and the query window covers
the whole test, so for one server the ratio of two rate() values is exactly
clicks over slates. Summed over both servers, as for the cold-start version that
both serve, each server's rate() is extrapolated to the window end by its own
factor (within 1 + scrape interval / test length), so that sum is only close.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from adaptrec.model_server.rollouts import COLD_START_VERSION
from adaptrec.rollout import Rollout
from tests.model_server.conftest import SavedModel, hyperparams, write_rollout
from tests.support.model_server import ModelServerProcess
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.slow, pytest.mark.component]

# The PromQL the operator's canary analysis uses, over a window longer than the
# test, so it covers every slate and click.
CTR_QUERY = (
    'sum by (version) (rate(adaptrec_clicks_total{{model="{model}"}}[5m])) '
    '/ sum by (version) (rate(adaptrec_recommendations_total{{model="{model}"}}[5m]))'
)
SLATES_QUERY = 'sum by (version) (adaptrec_recommendations_total{{model="{model}"}})'
CLICKS_QUERY = 'sum by (version) (adaptrec_clicks_total{{model="{model}"}})'
CTR_BY_INSTANCE_QUERY = (
    'sum by (instance, version) (rate(adaptrec_clicks_total{{model="{model}"}}[5m])) '
    "/ sum by (instance, version) "
    '(rate(adaptrec_recommendations_total{{model="{model}"}}[5m]))'
)
REQUESTS_PER_SERVER = 40
USERS_PER_REQUEST = 5


def simulate_traffic(
    server: ModelServerProcess,
    user_ids: list[str],
    click_rates: dict[str, float],
    rng: random.Random,
) -> tuple[Counter[str], Counter[str]]:
    """Request slates and click on some; return slates and clicks per version."""
    slates: Counter[str] = Counter()
    clicks: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for request in range(REQUESTS_PER_SERVER):
            users = rng.sample(user_ids, USERS_PER_REQUEST - 1)
            users.append(f"visitor-{request}")
            response = client.post(
                f"/v1/models/{server.model_name}:predict",
                json={"instances": users, "k": 10},
            )
            response.raise_for_status()
            for prediction in response.json()["predictions"]:
                version = prediction["version"]
                slates[version] += 1
                # One slate yields at most one click, as in the user simulator.
                if rng.random() < click_rates[version]:
                    click = {
                        "userId": prediction["userId"],
                        "itemId": rng.choice(prediction["items"]),
                        "version": version,
                    }
                    client.post(
                        f"/v1/models/{server.model_name}/feedback", json=click
                    ).raise_for_status()
                    clicks[version] += 1
    return slates, clicks


def test_ctr_per_version_from_prometheus(
    model_server_factory: Callable[..., ModelServerProcess],
    prometheus_factory: Callable[..., PrometheusServer],
    saved_model: SavedModel,
    tmp_path: Path,
) -> None:
    set_a = hyperparams(alpha=0.8, w_content=0.1)
    set_b = hyperparams(alpha=0.3, w_topic=0.5)
    servers = [
        model_server_factory(
            saved_model.directory,
            model_name="hybrid",
            rollout_file=write_rollout(tmp_path / f"{name}.json", Rollout(hyperset)),
        )
        for name, hyperset in (("a", set_a), ("b", set_b))
    ]
    prometheus = prometheus_factory([server.target for server in servers])
    prometheus.wait_for(
        "up", "instance", lambda up: all(up.get(s.target) == 1.0 for s in servers)
    )

    click_rates = {set_a.version: 0.3, set_b.version: 0.1, COLD_START_VERSION: 0.2}
    rng = random.Random(7)
    slates: Counter[tuple[str, str]] = Counter()
    clicks: Counter[tuple[str, str]] = Counter()
    for server in servers:
        server_slates, server_clicks = simulate_traffic(
            server, saved_model.user_ids, click_rates, rng
        )
        for version, count in server_slates.items():
            slates[server.target, version] += count
        for version, count in server_clicks.items():
            clicks[server.target, version] += count
    slates_by_version: Counter[str] = Counter()
    clicks_by_version: Counter[str] = Counter()
    for (_, version), count in slates.items():
        slates_by_version[version] += count
    for (_, version), count in clicks.items():
        clicks_by_version[version] += count

    # Wait until Prometheus has scraped the final counts of both servers.
    expected = {version: float(count) for version, count in slates_by_version.items()}
    prometheus.wait_for(
        SLATES_QUERY.format(model="hybrid"),
        "version",
        lambda result: result == expected,
    )
    expected_clicks = {
        version: float(clicks_by_version[version]) for version in expected
    }
    scraped_clicks = prometheus.wait_for(
        CLICKS_QUERY.format(model="hybrid"),
        "version",
        lambda result: result == expected_clicks,
    )
    ctr = prometheus.query_by_label(CTR_QUERY.format(model="hybrid"), "version")
    ctr_by_instance = {
        (sample["metric"]["instance"], sample["metric"]["version"]): float(
            sample["value"][1]
        )
        for sample in prometheus.query(CTR_BY_INSTANCE_QUERY.format(model="hybrid"))
    }

    assert set(slates_by_version) == {set_a.version, set_b.version, COLD_START_VERSION}
    for version, count in slates_by_version.items():
        assert scraped_clicks[version] == clicks_by_version[version]
        observed = clicks_by_version[version] / count
        # Exact for A and B, each served by one server; close for cold-start.
        tolerance = 0.05 if version == COLD_START_VERSION else 1e-9
        assert ctr[version] == pytest.approx(observed, rel=tolerance)
    assert set(ctr_by_instance) == set(slates)
    for key, count in slates.items():
        assert ctr_by_instance[key] == pytest.approx(clicks[key] / count, rel=1e-9)
    # The traffic's design shows through: A's slates were clicked more than B's.
    assert ctr[set_a.version] > ctr[set_b.version]
