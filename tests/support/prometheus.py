"""A real Prometheus server on a free loopback port, for component tests.

:func:`start_prometheus` writes a scrape configuration for the given targets,
starts Debian's ``prometheus`` binary with temporary storage and waits until it
is ready; :func:`stop_prometheus` stops it. The ``prometheus_factory`` fixture
starts servers on demand and stops every one at the end of the test, also when
the test fails. When prometheus is not installed the fixture fails, naming the
install script, because CI installs it and a silent skip would hide the missing
coverage.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import free_port, stop_process, wait_for_http

INSTALL_SCRIPT = "scripts/install-test-services.sh"
START_TIMEOUT_S = 30.0


class PrometheusError(RuntimeError):
    """Prometheus did not start, or a query failed."""


@dataclass
class PrometheusServer:
    """A running Prometheus: its port, process, log file and HTTP API."""

    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query and return the result vector.

        Raises:
            PrometheusError: The query was rejected or Prometheus is unreachable.
        """
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, timeout=10
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"query {promql!r} failed with HTTP {response.status_code}: "
                f"{body.get('error', body)}"
            )
        return body["data"]["result"]

    def query_by_label(self, promql: str, label: str) -> dict[str, float]:
        """Run an instant query and map each series' ``label`` value to its value."""
        return {
            sample["metric"].get(label, ""): float(sample["value"][1])
            for sample in self.query(promql)
        }

    def wait_for(
        self,
        promql: str,
        label: str,
        condition: Callable[[dict[str, float]], bool],
        timeout_s: float = 30.0,
    ) -> dict[str, float]:
        """Re-run a query until ``condition`` holds for its result; return it.

        Raises:
            PrometheusError: The condition did not hold within ``timeout_s``,
                naming the last result.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query_by_label(promql, label)
            if condition(result):
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"query {promql!r} did not reach the expected result within "
                    f"{timeout_s:.0f} s; last result: {result}"
                )
            time.sleep(0.25)


def find_prometheus() -> str:
    """Return the path of prometheus, or fail the test naming the install script."""
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(
            f"prometheus is not installed; run {INSTALL_SCRIPT} (CI runs it before "
            "the tests) to install Debian's prometheus",
            pytrace=False,
        )
    return path


def start_prometheus(
    directory: Path,
    targets: Sequence[str],
    job_name: str = "adaptrec",
    scrape_interval: str = "1s",
) -> PrometheusServer:
    """Start Prometheus on 127.0.0.1 scraping ``targets`` and wait until it is ready.

    Args:
        directory: Empty directory for the configuration, storage and log.
        targets: ``host:port`` addresses to scrape at ``/metrics``; loopback only.
        job_name: Value of the ``job`` label on scraped series.
        scrape_interval: Prometheus duration between scrapes, such as ``1s``.

    Raises:
        ValueError: A target is not on 127.0.0.1.
        PrometheusError: Prometheus exited or was not ready in time.
    """
    for target in targets:
        if not target.startswith("127.0.0.1:"):
            raise ValueError(f"target {target!r} is not on 127.0.0.1")
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": job_name,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    storage = directory / "data"
    storage.mkdir()
    log_path = directory / "prometheus.log"

    port = free_port()
    command = [
        find_prometheus(),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, cwd=directory
        )
    server = PrometheusServer(port=port, process=process, log_path=log_path)
    try:
        wait_for_http(process, f"{server.url}/-/ready", START_TIMEOUT_S, log_path)
    except RuntimeError as error:
        raise PrometheusError(f"prometheus did not start: {error}") from None
    return server


def stop_prometheus(server: PrometheusServer) -> None:
    """Stop ``server`` and wait for its process to exit."""
    stop_process(server.process)


@pytest.fixture
def prometheus_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., PrometheusServer]]:
    """Return ``start(targets, **options)``; every server is stopped after the test."""
    servers: list[PrometheusServer] = []

    def start(targets: Sequence[str], **options: Any) -> PrometheusServer:
        server = start_prometheus(
            tmp_path_factory.mktemp("prometheus"), targets, **options
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_prometheus(server)
