#!/usr/bin/env bash
# Runs every dynup test, installing what the tests need first. This is the README's test command and what
# CI runs (.ci/run). Safe to run again: installs and the Consul build are cached.
#
#   bash test/all.sh            # everything
#   bash test/all.sh ./xds/...  # only some packages (installs still happen)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "Consul agent for the Consul tests (built from the Go module proxy; ~8 min the first time)"
if consul_bin="$(bash test/consulagent/build-consul.sh)"; then
  export DYNUP_CONSUL_BIN="$consul_bin"
  echo "$DYNUP_CONSUL_BIN"
elif [ "${CI:-}" = "true" ]; then
  echo "Consul build failed; in CI that is a failure" >&2
  exit 1
else
  echo "Consul build failed: the Consul tests will be skipped" >&2
fi

step "Chromium and ChromeDriver for the dashboard test (Debian's chromium, chromium-driver)"
if ! bash test/install-chromium.sh; then
  [ "${CI:-}" = "true" ] && { echo "Chromium install failed; in CI that is a failure" >&2; exit 1; }
  echo "Chromium install failed: the dashboard browser test will be skipped" >&2
fi

step "gofmt and go vet"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...

step "go test -race"
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
go test -race -count=1 -timeout 30m "${pkgs[@]}"
[ $# -gt 0 ] || { step "benchmarks, once each (proves they run; figures: docs/benchmarks.md)"; go test -run '^$' -bench . -benchtime 1x ./...; }
[ $# -gt 0 ] || { step "fuzzing (${FUZZTIME:-10s} per target)"; bash test/fuzz.sh; }
