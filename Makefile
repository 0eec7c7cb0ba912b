# Entry points a user or CI runs. Each target sets up what it needs first.
.PHONY: setup run test test-services k8s lint bench

setup:
	./scripts/setup.sh

# The main job on its embedded defaults: MovieLens-100K, the quick preset.
run: setup
	.venv/bin/adaptrec run --preset quick --output reports/quick

# Installs the test servers (Prometheus, Redis) and builds or reuses the local
# Kubernetes binaries, then runs every test tier.
test: setup test-services k8s
	./scripts/test.sh

test-services:
	./scripts/install-test-services.sh

k8s:
	./scripts/build-k8s.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# Regenerates BENCHMARKS.md; RecBole runs in its own virtual environment.
bench: setup
	./benchmarks/recbole/setup.sh
	.venv/bin/adaptrec bench
