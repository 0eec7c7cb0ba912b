"""Click feedback counting, readiness and live rollout reloads, in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from adaptrec.model_server.rollouts import COLD_START_VERSION
from adaptrec.rollout import Rollout
from tests.model_server.conftest import (
    SPACE,
    SavedModel,
    ServedModel,
    hyperparams,
    serve_in_process,
    write_rollout,
)

pytestmark = [
    pytest.mark.slow,
    # kserve 0.21.0's v1 handler returns FastAPI's deprecated ORJSONResponse.
    pytest.mark.filterwarnings("ignore:ORJSONResponse is deprecated"),
]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_click_counted_for_version(served: ServedModel) -> None:
    response = served.client.post(
        f"/v1/models/{served.name}:predict", json={"instances": ["7"]}
    )
    prediction = response.json()["predictions"][0]
    version = prediction["version"]
    before = metric("adaptrec_clicks_total", model=served.name, version=version)

    click = {"userId": "7", "itemId": prediction["items"][3], "version": version}
    response = served.client.post(f"/v1/models/{served.name}/feedback", json=click)

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1}
    after = metric("adaptrec_clicks_total", model=served.name, version=version)
    assert after == before + 1


def test_click_batch_counted_per_version(served: ServedModel) -> None:
    version = SPACE.initial().version
    before_stable = metric("adaptrec_clicks_total", model=served.name, version=version)
    before_cold = metric(
        "adaptrec_clicks_total", model=served.name, version=COLD_START_VERSION
    )
    events = [
        {"userId": "1", "itemId": "50", "version": version},
        {"userId": 2, "itemId": 100, "version": version},
        {"userId": "newcomer", "itemId": "1", "version": COLD_START_VERSION},
    ]

    response = served.client.post(
        f"/v1/models/{served.name}/feedback", json={"events": events}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3}
    stable = metric("adaptrec_clicks_total", model=served.name, version=version)
    cold = metric(
        "adaptrec_clicks_total", model=served.name, version=COLD_START_VERSION
    )
    assert stable == before_stable + 2
    assert cold == before_cold + 1


def test_rejected_batch_counts_nothing(served: ServedModel) -> None:
    version = SPACE.initial().version
    before = metric("adaptrec_clicks_total", model=served.name, version=version)
    rejected_before = metric(
        "adaptrec_feedback_rejected_total",
        model=served.name,
        reason="UnknownItemError",
    )
    events = [
        {"userId": "1", "itemId": "50", "version": version},
        {"userId": "1", "itemId": "no-such-item", "version": version},
    ]

    response = served.client.post(
        f"/v1/models/{served.name}/feedback", json={"events": events}
    )

    assert response.status_code == 422
    assert response.json()["field"] == "events[1].itemId"
    assert metric("adaptrec_clicks_total", model=served.name, version=version) == before
    rejected = metric(
        "adaptrec_feedback_rejected_total",
        model=served.name,
        reason="UnknownItemError",
    )
    assert rejected == rejected_before + 1


@pytest.fixture
def reloading(saved_model: SavedModel, tmp_path: Path) -> Iterator[ServedModel]:
    """A model following a rollout file that starts invalid, so it is not ready."""
    path = tmp_path / "rollout.json"
    path.write_text("{not json")
    yield from serve_in_process("hybrid-reload", saved_model, path)


def test_not_ready_until_rollout_valid(reloading: ServedModel) -> None:
    client, name = reloading.client, reloading.name
    path = reloading.model.rollout_file
    assert path is not None

    assert reloading.model.ready is False
    assert client.get(f"/v2/models/{name}/ready").status_code == 503
    assert client.get(f"/v1/models/{name}").status_code == 503
    response = client.post(f"/v1/models/{name}:predict", json={"instances": ["1"]})
    assert response.status_code == 503
    assert "Traceback" not in response.text

    stable = hyperparams(w_topic=0.7)
    write_rollout(path, Rollout(stable))
    assert reloading.model.rollouts is not None
    assert reloading.model.rollouts.poll() is True

    assert client.get(f"/v2/models/{name}/ready").status_code == 200
    response = client.post(f"/v1/models/{name}:predict", json={"instances": ["1"]})
    assert response.status_code == 200
    assert response.json()["predictions"][0]["version"] == stable.version


def test_reload_switches_version_and_keeps_it_on_error(
    reloading: ServedModel,
) -> None:
    client, name = reloading.client, reloading.name
    path = reloading.model.rollout_file
    rollouts = reloading.model.rollouts
    assert path is not None and rollouts is not None
    first, second = hyperparams(alpha=0.8), hyperparams(alpha=0.2)
    write_rollout(path, Rollout(first))
    rollouts.poll()

    def served_version() -> str:
        response = client.post(f"/v1/models/{name}:predict", json={"instances": ["9"]})
        assert response.status_code == 200, response.text
        return response.json()["predictions"][0]["version"]

    assert served_version() == first.version
    write_rollout(path, Rollout(second))
    rollouts.poll()
    assert served_version() == second.version

    errors_before = metric("adaptrec_rollout_reload_errors_total", model=name)
    path.write_text('{"stable": {"values": {"alpha": 2.0}}}')
    assert rollouts.poll() is False
    assert served_version() == second.version
    assert metric("adaptrec_rollout_reload_errors_total", model=name) == (
        errors_before + 1
    )

    # Clicks on the version that was just replaced are still accepted.
    click = {"userId": "9", "itemId": "1", "version": first.version}
    response = client.post(f"/v1/models/{name}/feedback", json=click)
    assert response.status_code == 200, response.text


def test_rollout_route_describes_active_sets(reloading: ServedModel) -> None:
    path = reloading.model.rollout_file
    assert path is not None and reloading.model.rollouts is not None
    rollout = Rollout(hyperparams(alpha=0.6), hyperparams(alpha=0.4), 20)
    write_rollout(path, rollout)
    reloading.model.rollouts.poll()

    response = reloading.client.get(f"/v1/models/{reloading.name}/rollout")

    assert response.status_code == 200
    body = response.json()
    assert body["stable"] == rollout.stable.to_json_dict()
    assert body["candidate"] == rollout.to_json_dict()["candidate"]
    assert body["canaryPercent"] == 20
    assert body["source"] == str(path)
    assert body["loadedAt"].endswith("+00:00")
