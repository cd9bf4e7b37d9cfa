#!/usr/bin/env bash
# Runs the full test suite in its own virtual environment (.venv-test), created from scratch if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
source scripts/_system.sh
source scripts/_frontend.sh
ensure_debian_packages chromium chromium-driver openmpi-bin libopenmpi-dev fonts-dejavu-core || true
ensure_venv .venv-test dev
ensure_frontend
export TRAINYARD_TEST_POSTGRES_URL="${TRAINYARD_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
# The MLflow tests' own client environments (pinned MLflow 2.x and 3.x, see
# tests/mlflow_plugin/conftest.py) build in the background from the start, so the tests that need
# them (under a file lock) find them ready instead of holding a worker while pip runs.
(cd tests/mlflow_plugin && ../../.venv-test/bin/python -c \
  "import conftest; [conftest.ensure_mlflow_venv(label) for label in conftest.PINS]" \
  >/tmp/trainyard-mlflow-venvs.log 2>&1 &)
exec .venv-test/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
