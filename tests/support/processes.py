"""Helpers for tests that run servers as subprocesses on loopback ports."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (it may be taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path: Path, characters: int = 4000) -> str:
    """Return the end of a log file, or an empty string if it does not exist."""
    if not path.exists():
        return ""
    return path.read_text(errors="replace")[-characters:]


def wait_for_http(
    process: subprocess.Popen,
    url: str,
    timeout_s: float,
    log_path: Path,
    accept: Callable[[int], bool] = lambda status: status == 200,
) -> None:
    """Poll ``url`` until its status passes ``accept``; stop the process on failure.

    Raises:
        RuntimeError: The process exited, or ``url`` did not pass in time; the
            message ends with the process's log.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with code {process.returncode} before "
                f"{url} responded: {log_tail(log_path)}"
            )
        try:
            if accept(httpx.get(url, timeout=2).status_code):
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(
                f"{url} was not ready within {timeout_s:.0f} s: {log_tail(log_path)}"
            )
        time.sleep(0.1)


def stop_process(process: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """Send SIGTERM, wait ``timeout_s`` (then SIGKILL) and return the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
