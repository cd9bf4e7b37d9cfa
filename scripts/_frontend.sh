# Sourced by the scripts: build the studio's front-end (studio/frontend → src/trainyard/studio/static)
# when the built files are missing or older than the sources. Needs Node 20+ and npm (the npm
# registry); without them the studio serves a page that says how to build it.
ensure_frontend() {
  local src=studio/frontend out=src/trainyard/studio/static
  command -v npm >/dev/null 2>&1 || { echo ">> npm not found: the studio's front-end is not built" >&2; return 0; }
  if [ -f "$out/index.html" ] && [ -z "$(find "$src/src" "$src/index.html" "$src/package-lock.json" "$src/vite.config.ts" -newer "$out/index.html" 2>/dev/null | head -1)" ]; then
    return 0
  fi
  echo ">> building the studio front-end ($src)" >&2
  (cd "$src" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent) >&2
}
