"""The Dockerfile lints clean and keeps the image's promises.

There is no container engine on the build machines, so the image itself is not
built here; these checks read the Dockerfile.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def _stages() -> list[str]:
    text = DOCKERFILE.read_text()
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_pinned_to_exact_tag():
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert match is not None
    assert re.fullmatch(
        r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", match[1]
    )


def test_multi_stage_without_build_tools_at_the_end():
    stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert "build-essential" in stages[0]
    assert "build-essential" not in final
    assert "apt-get install" not in final
    assert "COPY --from=builder /opt/venv" in final


def test_final_stage_runs_as_non_root():
    final = _stages()[-1]
    users = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")


def test_entrypoint_is_cli():
    assert re.search(r'^ENTRYPOINT \["adaptrec"\]$', _stages()[-1], re.MULTILINE)


def test_installs_from_lock():
    builder = _stages()[0]
    assert "--constraint requirements.lock" in builder


def test_context_excludes_local_state():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "feature_repo/data", "tests"):
        assert path in ignored
