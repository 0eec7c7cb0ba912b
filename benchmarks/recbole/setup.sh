#!/usr/bin/env bash
# Build, or reuse, RecBole's virtual environment for `adaptrec bench`:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/adaptrec/recbole-venv
# from the pinned requirements.txt beside this script. Running it again only
# reinstalls what differs from the pins. Needs uv on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${ADAPTREC_RECBOLE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/adaptrec/recbole-venv}"

command -v uv >/dev/null 2>&1 \
    || { echo "recbole setup: error: uv is not on PATH; install it with pip install uv" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
    echo "recbole setup: creating $venv"
    uv venv --python 3.11 "$venv"
fi
echo "recbole setup: installing the pinned packages into $venv"
uv pip install --python "$venv/bin/python" --no-deps -r "$here/requirements.txt"
"$venv/bin/python" -c "import recbole; print('recbole setup: recbole', recbole.__version__, 'ready')"
