"""Model-server subprocesses on free loopback ports, for component tests.

:func:`start_model_server` runs the model server as a real process and waits
until the model is ready. The ``model_server_factory`` fixture stops every server
it started at the end of the test, also when the test fails.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import (
    free_port,
    log_tail,
    stop_process,
    wait_for_http,
)

START_TIMEOUT_S = 120.0
# The console script, not ``python -m adaptrec.cli``: run as __main__, the CLI
# module would be loaded twice and its error classes would not match.
ADAPTREC = Path(sys.executable).with_name("adaptrec")


@dataclass
class ModelServerProcess:
    """A running ``adaptrec serve``: its port, process, model name and log."""

    port: int
    process: subprocess.Popen
    model_name: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        """The ``host:port`` that Prometheus scrapes."""
        return f"127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return log_tail(self.log_path)


def start_model_server(
    directory: Path,
    model_dir: Path,
    model_name: str = "adaptrec",
    rollout_file: Path | None = None,
    extra_args: tuple[str, ...] = (),
    wait_ready: bool = True,
    console_script: bool = False,
) -> ModelServerProcess:
    """Start the model server on 127.0.0.1 and wait until the model is ready.

    The server runs as ``python -m adaptrec.model_server``, or as ``adaptrec
    serve`` with ``console_script``, which takes longer to start because it
    imports every other subcommand too.

    With ``wait_ready`` false, it waits only until the server accepts HTTP
    requests, for a server that is expected to start not ready.

    Raises:
        RuntimeError: The process exited or did not become ready in time; the
            message ends with the server's log.
    """
    port = free_port()
    log_path = directory / f"model-server-{port}.log"
    if console_script:
        command = [str(ADAPTREC), "serve"]
    else:
        command = [sys.executable, "-m", "adaptrec.model_server"]
    command += [
        "--model-dir", str(model_dir),
        "--model-name", model_name,
        "--http-port", str(port),
        "--rollout-poll-seconds", "0.2",
        *extra_args,
    ]  # fmt: skip
    if rollout_file is not None:
        command += ["--rollout-file", str(rollout_file)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    server = ModelServerProcess(port, process, model_name, log_path)

    ready_url = f"{server.url}/v2/models/{model_name}/ready"
    # A server that starts not ready returns 503 on the ready route.
    accept = (lambda status: status == 200) if wait_ready else (lambda status: True)
    wait_for_http(process, ready_url, START_TIMEOUT_S, log_path, accept)
    return server


def stop_model_server(server: ModelServerProcess) -> int:
    """Stop ``server`` with SIGTERM and return its exit code."""
    return stop_process(server.process)


@pytest.fixture
def model_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ModelServerProcess]]:
    """Return ``start(model_dir, **options)``; each server stops after the test."""
    servers: list[ModelServerProcess] = []
    directory = tmp_path_factory.mktemp("model-server")

    def start(model_dir: Path, **options: Any) -> ModelServerProcess:
        server = start_model_server(directory, model_dir, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_model_server(server)
