# Sourced by the scripts: create (or refresh) a virtual environment from scratch.
# usage: ensure_venv DIR EXTRAS
ensure_venv() {
  local dir="$1" extras="$2"
  local stamp="$dir/.trainyard-stamp"
  local want
  want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo ">> creating $dir (extras: $extras)" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    # This machine's pip config names local indexes that lack most packages: hide those warnings.
    "$dir/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$dir/bin/python" -m pip install -q -e ".[$extras]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    echo "$want" > "$stamp"
  fi
}
