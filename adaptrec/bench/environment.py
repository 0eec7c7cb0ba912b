"""The machine a benchmark ran on, and where the parts find their prerequisites."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

# The source checkout this module belongs to: it contains benchmarks/ when adaptrec
# runs from a clone, and not when it runs from an installed wheel.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
RECBOLE_VENV_VARIABLE = "ADAPTREC_RECBOLE_VENV"
RECBOLE_SETUP = "benchmarks/recbole/setup.sh"


def describe_machine() -> dict[str, Any]:
    """Return cores, CPU model, memory, GPU and load of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_gib, 1),
        "gpu": gpu,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def machine_line(machine: dict[str, Any]) -> str:
    """Return a one-line description of :func:`describe_machine`'s output."""
    gpu = machine.get("gpu") or "no GPU"
    return (
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB "
        f"memory, {gpu}, 1-minute load average {machine['load_average_1m']} at the "
        "start"
    )


def utc_now() -> str:
    """Return the current UTC time in ISO 8601, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def invoked_command() -> str:
    """Return the command line of this process as ``adaptrec ...`` when it is the
    CLI, else as the Python command that ran it."""
    arguments = sys.argv[1:]
    if Path(sys.argv[0]).name == "adaptrec":
        return shlex.join(["adaptrec", *arguments])
    return shlex.join(["python", Path(sys.argv[0]).name, *arguments])


def recbole_venv(explicit: str | None = None) -> Path:
    """Return RecBole's virtual environment folder.

    The order is ``explicit``, then ``$ADAPTREC_RECBOLE_VENV``, then
    ``${XDG_CACHE_HOME:-~/.cache}/adaptrec/recbole-venv``.
    """
    if explicit:
        return Path(explicit).expanduser()
    from_environment = os.environ.get(RECBOLE_VENV_VARIABLE)
    if from_environment:
        return Path(from_environment).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "adaptrec" / "recbole-venv"
