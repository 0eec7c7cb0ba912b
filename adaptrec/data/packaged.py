"""MovieLens-100K as packaged by RecBole, fetched once with pip and read from a cache.

The RecBole 1.2.1 wheel on PyPI ships ``recbole/dataset_example/ml-100k/`` with the
ratings, item metadata and a knowledge graph (KB4Rec Freebase triples linked to the
items). The wheel is a zip file, so the loader reads those members in place; nothing
is unpacked and no data is committed to this repository.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from adaptrec.data.dataset import DataError

logger = logging.getLogger(__name__)

RECBOLE_VERSION = "1.2.1"
WHEEL_NAME = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
# SHA-256 of the wheel that PyPI serves for recbole 1.2.1 (PyPI files are immutable).
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MEMBER_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
MEMBER_SUFFIXES = ("inter", "item", "user", "kg", "link")

_DOWNLOAD_TIMEOUT_S = 300


def default_cache_dir() -> Path:
    """Return ``$ADAPTREC_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/adaptrec``."""
    explicit = os.environ.get("ADAPTREC_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "adaptrec"


def member_name(suffix: str) -> str:
    """Return the wheel member path of one ml-100k atomic file, such as ``"kg"``."""
    return f"{MEMBER_PREFIX}.{suffix}"


def ensure_wheel(cache_dir: Path | str | None = None) -> Path:
    """Return the path of a verified RecBole wheel, downloading it on first use.

    Raises:
        DataError: The cached wheel is corrupt, or the download failed.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    wheel = cache / WHEEL_NAME
    if not wheel.exists():
        _download_wheel(cache)
    verify_wheel(wheel)
    return wheel


def verify_wheel(wheel: Path) -> None:
    """Check that ``wheel`` is a readable zip with every ml-100k member and the
    expected SHA-256.

    Raises:
        DataError: Naming the file and how to recover.
    """
    fix = f"delete {wheel} and run again to download a fresh copy"
    if not zipfile.is_zipfile(wheel):
        raise DataError(
            f"{wheel} is not a readable zip file (corrupt or truncated); {fix}"
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"{wheel} cannot be opened as a zip file ({error}); {fix}"
        ) from error
    missing = [member_name(s) for s in MEMBER_SUFFIXES if member_name(s) not in names]
    if missing:
        raise DataError(f"{wheel} lacks the expected members {missing}; {fix}")

    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise DataError(
            f"{wheel} has SHA-256 {digest}, expected {WHEEL_SHA256} for recbole "
            f"{RECBOLE_VERSION}; {fix}"
        )


def read_member(wheel: Path, suffix: str) -> bytes:
    """Return the bytes of one ml-100k member of ``wheel``.

    Raises:
        DataError: The member is missing or fails its CRC check.
    """
    name = member_name(suffix)
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(name)
    except KeyError as error:
        raise DataError(f"{wheel} has no member {name}") from error
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(
            f"{wheel}: member {name} is corrupt ({error}); delete {wheel} and run "
            "again to download a fresh copy"
        ) from error


def _find_pip() -> list[str]:
    """Return the command that runs pip: this interpreter's, else python3's."""
    candidates = [[sys.executable, "-m", "pip"]]
    system_python = shutil.which("python3")
    if system_python:
        candidates.append([system_python, "-m", "pip"])
    for command in candidates:
        probe = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return command
    raise DataError(
        f"no pip found to download {WHEEL_NAME} (tried {sys.executable} -m pip and "
        "python3 -m pip); install pip, or put the wheel into the cache folder by hand"
    )


def _download_wheel(cache: Path) -> None:
    """Download the RecBole wheel into ``cache`` through pip, atomically."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create the cache folder {cache} ({error}); set ADAPTREC_CACHE "
            "to a writable folder"
        ) from error
    pip = _find_pip()
    logger.info("Downloading %s into %s (about 2 MB)", WHEEL_NAME, cache)

    # Download into a scratch folder beside the target so the final rename is atomic
    # and an interrupted download never leaves a partial wheel under the final name.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as scratch:
        command = [
            *pip,
            "download",
            f"recbole=={RECBOLE_VERSION}",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            scratch,
        ]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                timeout=_DOWNLOAD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as error:
            raise DataError(
                f"downloading {WHEEL_NAME} timed out after {_DOWNLOAD_TIMEOUT_S} s; "
                f"check access to PyPI or put the wheel into {cache} by hand"
            ) from error
        downloaded = Path(scratch) / WHEEL_NAME
        if result.returncode != 0 or not downloaded.exists():
            detail = (result.stderr or result.stdout).strip()[-500:]
            raise DataError(
                f"downloading {WHEEL_NAME} with '{' '.join(pip)}' failed "
                f"(exit {result.returncode}): {detail}; check access to PyPI or put "
                f"the wheel into {cache} by hand"
            )
        os.replace(downloaded, cache / WHEEL_NAME)
    logger.info("Cached %s", cache / WHEEL_NAME)
