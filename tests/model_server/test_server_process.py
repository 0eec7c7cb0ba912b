"""The model server as a real process on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from adaptrec.rollout import Rollout
from tests.model_server.conftest import SavedModel, hyperparams, write_rollout
from tests.support.model_server import ADAPTREC, ModelServerProcess, stop_model_server

pytestmark = [pytest.mark.slow, pytest.mark.component]

StartServer = Callable[..., ModelServerProcess]


def test_protocols_and_metrics_over_http(
    model_server_factory: StartServer, saved_model: SavedModel
) -> None:
    server = model_server_factory(saved_model.directory, model_name="recs")
    base = server.url

    v1 = httpx.post(f"{base}/v1/models/recs:predict", json={"instances": ["196"]})
    v2 = httpx.post(
        f"{base}/v2/models/recs/infer",
        json={
            "inputs": [
                {"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["196"]}
            ]
        },
    )
    prediction = v1.json()["predictions"][0]
    click = httpx.post(
        f"{base}/v1/models/recs/feedback",
        json={
            "userId": "196",
            "itemId": prediction["items"][0],
            "version": prediction["version"],
        },
    )
    bad = httpx.post(f"{base}/v1/models/recs:predict", content=b"{")
    metrics = httpx.get(f"{base}/metrics").text

    assert v1.status_code == 200
    assert v2.status_code == 200
    v2_items = next(o for o in v2.json()["outputs"] if o["name"] == "items")["data"]
    assert v2_items == prediction["items"]
    assert click.status_code == 200
    assert bad.status_code == 400
    version = prediction["version"]
    assert (
        f'adaptrec_recommendations_total{{model="recs",version="{version}"}} 2.0'
        in (metrics)
    )
    assert f'adaptrec_clicks_total{{model="recs",version="{version}"}} 1.0' in metrics
    assert "adaptrec_request_duration_seconds_bucket" in metrics
    # kserve's own request histograms are exposed on the same endpoint.
    assert 'request_predict_seconds_count{model_name="recs"}' in metrics
    assert "serving on http://127.0.0.1:" in server.log_tail()


def test_reload_under_load_drops_nothing(
    model_server_factory: StartServer, saved_model: SavedModel, tmp_path: Path
) -> None:
    first, second = hyperparams(alpha=0.9), hyperparams(alpha=0.3)
    rollout_file = write_rollout(tmp_path / "rollout.json", Rollout(first))
    server = model_server_factory(
        saved_model.directory, model_name="recs", rollout_file=rollout_file
    )
    statuses: Counter[int] = Counter()
    versions: list[str] = []
    stop = threading.Event()

    def send_requests() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                response = client.post(
                    "/v1/models/recs:predict", json={"instances": ["42", "43"]}
                )
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    versions.append(response.json()["predictions"][0]["version"])

    sender = threading.Thread(target=send_requests)
    sender.start()
    try:
        time.sleep(1.0)
        # Replace the file atomically, as a ConfigMap update does.
        staged = write_rollout(tmp_path / "staged.json", Rollout(second))
        os.replace(staged, rollout_file)
        deadline = time.monotonic() + 20
        while second.version not in versions[-5:] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)

        rollout_file.write_text("not json at all")
        time.sleep(1.5)
    finally:
        stop.set()
        sender.join(timeout=30)

    assert set(statuses) == {200}, statuses
    assert versions[0] == first.version
    assert versions[-1] == second.version
    # Once switched, the invalid file did not switch it back or break requests.
    switch = versions.index(second.version)
    assert set(versions[switch:]) == {second.version}
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'adaptrec_rollout_reload_errors_total{model="recs"} 1.0' in metrics
    assert "rejected rollout file" in server.log_tail()


def test_sigterm_stops_cleanly(
    model_server_factory: StartServer, saved_model: SavedModel
) -> None:
    server = model_server_factory(saved_model.directory, console_script=True)

    code = stop_model_server(server)

    # uvicorn shuts down gracefully, then re-raises SIGTERM so that the exit
    # status shows a supervisor which signal ended the process.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in server.log_tail()
    assert "Traceback" not in server.log_tail()


def test_missing_model_dir_is_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(ADAPTREC), "serve",
            "--model-dir", str(tmp_path / "absent"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 2
    assert "--model-dir" in result.stderr
    assert "is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_model_dir_is_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "adaptrec.model_server",
            "--model-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip

    assert result.returncode == 2
    assert "cannot load the model in --model-dir" in result.stderr
    assert "manifest.json" in result.stderr
    assert "Traceback" not in result.stderr
