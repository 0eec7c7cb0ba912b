"""Speed parts: run the component benchmark scripts and read their JSON results.

Each script lives under ``benchmarks/`` of the source checkout, runs as a subprocess
with this interpreter and writes ``benchmarks/results/<name>.json`` (and ``.md``).
A part whose prerequisite is missing is skipped with the reason instead of run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


class PartSkipped(Exception):
    """A part cannot run here; the message names the missing prerequisite and the
    command that provides it."""


@dataclass(frozen=True)
class SpeedPart:
    """One component benchmark script.

    Attributes:
        name: Part name on the command line.
        script: Path below the source checkout.
        result: Result name; the script writes ``benchmarks/results/<result>.json``.
        output_option: The script's option for its results folder, or None when it
            always writes into the checkout's ``benchmarks/results/``.
        check: Raises :class:`PartSkipped` when a prerequisite is missing.
        timeout_s: Maximum run time before the script is stopped.
    """

    name: str
    script: str
    result: str
    output_option: str | None
    check: Callable[[Path], None]
    timeout_s: float


def _needs_nothing(source_root: Path) -> None:
    return None


def _needs_redis(source_root: Path) -> None:
    if shutil.which("redis-server") is None:
        raise PartSkipped(
            "redis-server is not installed, and the online-store comparison needs "
            "it; run scripts/install-test-services.sh"
        )


def _needs_locust(source_root: Path) -> None:
    if importlib.util.find_spec("locust") is None:
        raise PartSkipped("locust is not installed; run scripts/setup.sh")


def _needs_control_plane(source_root: Path) -> None:
    from adaptrec.testing.controlplane import BinariesMissingError, find_binaries

    try:
        find_binaries()
    except BinariesMissingError as error:
        raise PartSkipped(str(error)) from None


SPEED_PARTS = {
    part.name: part
    for part in (
        SpeedPart(
            "throughput",
            "benchmarks/dqn_throughput.py",
            "throughput",
            None,
            _needs_nothing,
            3600,
        ),
        SpeedPart(
            "features",
            "benchmarks/features/online_latency.py",
            "features",
            "--output",
            _needs_redis,
            3600,
        ),
        SpeedPart(
            "serving",
            "benchmarks/serving/run.py",
            "serving",
            "--output-dir",
            _needs_locust,
            1800,
        ),
        SpeedPart(
            "operator",
            "benchmarks/operator/operator_scale.py",
            "operator",
            None,
            _needs_control_plane,
            1800,
        ),
    )
}


def run_speed_part(
    part: SpeedPart,
    source_root: Path,
    results_dir: Path,
    extra_args: list[str],
    log_dir: Path,
    suffix: str = "",
) -> dict[str, Any]:
    """Run one script and return its JSON result.

    The result is stored as ``results_dir/speed-<result><suffix>.json`` (and
    ``.md``), so the bench never overwrites the files that the script writes when
    it is run by hand.

    Raises:
        PartSkipped: The script or a prerequisite is missing.
        RuntimeError: The script failed or timed out; the message contains the end
            of its output.
    """
    script = source_root / part.script
    if not script.is_file():
        raise PartSkipped(
            f"{part.script} is not in {source_root}; run adaptrec bench from a "
            "source checkout that contains it"
        )
    part.check(source_root)

    with tempfile.TemporaryDirectory(prefix=f"bench-{part.name}-") as scratch:
        command = [sys.executable, part.script, *extra_args]
        if part.output_option is not None:
            written_dir = Path(scratch)
            command += [part.output_option, scratch]
        else:
            written_dir = source_root / "benchmarks" / "results"
        names = [f"{part.result}.{extension}" for extension in ("json", "md")]
        # A script without an output option overwrites the checkout's own result
        # files, so they are restored once the new ones are copied.
        saved = {
            name: (written_dir / name).read_bytes()
            for name in names
            if part.output_option is None and (written_dir / name).is_file()
        }
        try:
            _run_script(
                part, command, source_root, log_dir / f"{part.name}{suffix}.log"
            )
            for name in names:
                source = written_dir / name
                if source.is_file():
                    target = results_dir / f"speed-{part.result}{suffix}{source.suffix}"
                    shutil.copyfile(source, target)
        finally:
            if part.output_option is None:
                for name in names:
                    if name in saved:
                        (written_dir / name).write_bytes(saved[name])
                    else:
                        (written_dir / name).unlink(missing_ok=True)
    return json.loads((results_dir / f"speed-{part.result}{suffix}.json").read_text())


def _run_script(
    part: SpeedPart, command: list[str], source_root: Path, log_path: Path
) -> None:
    log.info("running %s (log: %s)", " ".join(command), log_path)
    with log_path.open("w") as log_file:
        try:
            completed = subprocess.run(
                command,
                cwd=source_root,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=part.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"{part.script} timed out after {part.timeout_s:.0f} s and was "
                f"stopped; log tail: {_tail(log_path)}"
            ) from None
    if completed.returncode != 0:
        raise RuntimeError(
            f"{part.script} exited with code {completed.returncode}; log tail: "
            f"{_tail(log_path)}"
        )


def throughput_devices() -> list[str]:
    """Return the devices to time DQN and scoring throughput on: the CPU, and
    CUDA when a GPU is present."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " | ".join(text.strip().splitlines()[-lines:])
