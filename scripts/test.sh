#!/usr/bin/env bash
# Run the linters and every test tier. Expects scripts/setup.sh,
# scripts/install-test-services.sh and scripts/build-k8s.sh to have run (make test
# runs them first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "test: ruff check"
.venv/bin/ruff check .

echo "test: pytest"
.venv/bin/pytest "$@"
