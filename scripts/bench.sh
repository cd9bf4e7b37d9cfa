#!/usr/bin/env bash
# Run trainyard's side-by-side benchmarks against its peers (MLflow, Optuna, ...).
#
#   scripts/bench.sh              # every benchmark in benchmarks/
#   scripts/bench.sh tracking     # benchmarks/tracking.py only
#   scripts/bench.sh tracking --strict --postgres postgresql://user@host/db
#
# The peers live only in the benchmark environment: on first use (and whenever pyproject.toml
# changes) this creates .venv-bench with `python3 -m venv` and installs trainyard with its `bench`
# and `postgres` extras into it. Set BENCH_VENV to use another folder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.venv-bench}"

names=()
extra=()
# Leading words are benchmark names; from the first option (or after `--`) on, everything is passed
# to each benchmark unchanged.
while [[ $# -gt 0 ]]; do
  case "$1" in
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) extra=("$@"); break ;;
    *) names+=("$1"); shift ;;
  esac
done

cd "$ROOT"
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv "$VENV" "bench,postgres"  # rebuilt from scratch when pyproject.toml changes

if [[ ${#names[@]} -eq 0 ]]; then
  for f in "$ROOT"/benchmarks/*.py; do
    [[ -f "$f" ]] || continue
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
  "$VENV/bin/python" "$file" ${extra[@]+"${extra[@]}"} || status=$?
done
exit "$status"
