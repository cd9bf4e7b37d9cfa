#!/usr/bin/env bash
# Run trainyard's side-by-side benchmarks against its peers (MLflow, Optuna, ...).
#
#   scripts/bench.sh              # every benchmark in benchmarks/
#   scripts/bench.sh tracking     # benchmarks/tracking.py only
#   scripts/bench.sh tracking -- --strict --postgres postgresql://user@host/db
#
# The peers live only in the benchmark environment: on first use this creates .venv-bench (python3
# -m venv) and installs trainyard with its `bench` and `postgres` extras into it. Delete .venv-bench
# to rebuild it; set BENCH_VENV to use another folder, BENCH_PYTHON for another interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.venv-bench}"
PY_BOOT="${BENCH_PYTHON:-python3}"

names=()
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) extra+=("$1") ;;
    *) names+=("$1") ;;
  esac
  shift
done

if [[ ! -x "$VENV/bin/python" || ! -f "$VENV/.bench-ready" ]]; then
  echo "bench: creating $VENV (one time; takes a few minutes)" >&2
  "$PY_BOOT" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[bench,postgres]"
  touch "$VENV/.bench-ready"
fi

if [[ ${#names[@]} -eq 0 ]]; then
  for f in "$ROOT"/benchmarks/*.py; do
    base="$(basename "$f" .py)"
    [[ "$base" == _* ]] && continue
    names+=("$base")
  done
fi

export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true RAY_USAGE_STATS_ENABLED=0
status=0
for name in "${names[@]}"; do
  file="$ROOT/benchmarks/$name.py"
  if [[ ! -f "$file" ]]; then
    echo "bench: no benchmark named '$name' (no $file)" >&2
    status=2
    continue
  fi
  echo "== benchmarks/$name.py" >&2
  (cd "$ROOT" && "$VENV/bin/python" "$file" ${extra[@]+"${extra[@]}"}) || status=$?
done
exit "$status"
