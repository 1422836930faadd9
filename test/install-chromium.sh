#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver for the dashboard's browser test (test/dashboard): Debian's
# packages chromium and chromium-driver, unless both binaries are already there. Safe to run again; prints
# nothing when there is nothing to do. Exits non-zero, saying why, when it cannot install them: test/all.sh
# turns that into a failure in CI (CI=true) and into a skipped browser test elsewhere.
#
#   bash test/install-chromium.sh    # as root (CI, these machines), or with password-less sudo
set -euo pipefail

chromium=/usr/bin/chromium
driver=/usr/bin/chromedriver

have() { [ -x "$chromium" ] && [ -x "$driver" ]; }
fail() {
  echo "install-chromium: $*" >&2
  [ "${CI:-}" = "true" ] && echo "install-chromium: CI needs Chromium for the dashboard test: failing" >&2
  exit 1
}

have && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "chromium or chromedriver is missing, and installing needs root (or sudo)"
  sudo=(sudo -n) # never prompt: CI has no terminal
fi
command -v apt-get >/dev/null 2>&1 || fail "chromium or chromedriver is missing, and this is not a Debian system (no apt-get)"

echo "install-chromium: installing Debian's chromium and chromium-driver" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Wait for a dpkg lock held by another install instead of failing at once.
apt=("${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300)
if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
  cat "$log" >&2
  fail "apt-get could not install chromium and chromium-driver (output above)"
fi
have || fail "apt-get succeeded but $chromium or $driver is still missing"
echo "install-chromium: $("$driver" --version 2>/dev/null | head -n1)" >&2
