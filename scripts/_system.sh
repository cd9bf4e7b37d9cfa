# Sourced by the scripts: install the Debian packages the tests need when they are missing.
# usage: ensure_debian_packages PKG...
# The browser tests drive Debian's Chromium (chromium, chromium-driver); the distributed-training
# tests launch Open MPI (openmpi-bin, libopenmpi-dev for mpi4py). Nothing is done when all are there.
ensure_debian_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo ">> installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"; } >/tmp/trainyard-apt.log 2>&1; then
    echo "!! could not install ${missing[*]} (see /tmp/trainyard-apt.log); the tests that need them will fail" >&2
    return 1
  fi
}
