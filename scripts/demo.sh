#!/usr/bin/env bash
# Runs the main demo on the embedded default workspace, in its own virtual environment (.venv-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
source scripts/_frontend.sh
ensure_venv .venv-demo demo
ensure_frontend
exec .venv-demo/bin/python examples/demo.py "$@"
