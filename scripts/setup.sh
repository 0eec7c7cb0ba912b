#!/usr/bin/env bash
# Create .venv with every Python dependency pinned in requirements.lock and
# install adaptrec into it in editable mode. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
if ! command -v uv >/dev/null 2>&1 || [[ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
    echo "setup: installing uv $UV_VERSION"
    python3 -m pip install --quiet "uv==$UV_VERSION"
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv (Python 3.11)"
    uv venv --quiet --python 3.11 .venv
fi

echo "setup: syncing .venv with requirements.lock (the first run downloads several GB)"
uv pip sync --quiet --python .venv/bin/python requirements.lock
uv pip install --quiet --python .venv/bin/python --no-deps -e .
echo "setup: done; the CLI is .venv/bin/adaptrec"
