"""A real redis-server on a free loopback port, for tests of the Redis online store.

``redis_server`` starts one server per test session with persistence off and stops
it at the end; ``redis_database`` hands each caller an empty database on it. When
redis-server is not installed the fixture fails, naming the install script, because
CI installs it and a silent skip would hide the missing Redis coverage.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.processes import free_port, log_tail, stop_process

INSTALL_SCRIPT = "scripts/install-test-services.sh"
DATABASES = 64
START_TIMEOUT_S = 10.0


@dataclass
class RedisServer:
    """A running redis-server: its port and the process that owns it."""

    port: int
    process: subprocess.Popen

    def url(self, database: int = 0) -> str:
        """Return Feast's connection string for ``database`` on this server."""
        return f"127.0.0.1:{self.port},db={database}"


def find_redis_server() -> str:
    """Return the path of redis-server, or fail the test naming the install script."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail(
            f"redis-server is not installed; run {INSTALL_SCRIPT} (CI runs it before "
            "the tests) to install Debian's redis-server",
            pytrace=False,
        )
    return path


def start_redis(directory: Path) -> RedisServer:
    """Start redis-server on 127.0.0.1 without persistence and wait for its PING reply.

    Raises:
        RuntimeError: The server exited or did not answer PING in time.
    """
    port = free_port()
    log_path = directory / "redis.log"
    command = [
        find_redis_server(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--databases", str(DATABASES),
        "--dir", str(directory),
        "--logfile", str(log_path),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with code {process.returncode} on port {port}: "
                f"{log_tail(log_path)}"
            )
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(
                    f"redis-server did not answer PING on port {port} within "
                    f"{START_TIMEOUT_S:.0f} s"
                ) from None
            time.sleep(0.05)
    client.close()
    return RedisServer(port=port, process=process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session, stopped at the end."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def redis_database(redis_server: RedisServer) -> Callable[[], str]:
    """Return a factory of connection strings, each for a fresh, empty database."""
    numbers = itertools.count()

    def allocate() -> str:
        number = next(numbers)
        if number >= DATABASES:
            raise RuntimeError(
                f"all {DATABASES} Redis databases are in use; raise DATABASES"
            )
        client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=number)
        client.flushdb()
        client.close()
        return redis_server.url(number)

    return allocate
