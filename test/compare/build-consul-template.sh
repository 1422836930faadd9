#!/usr/bin/env bash
# Builds consul-template from the Go module proxy, for benchmark B6 (test/compare), as
# test/consulagent/build-consul.sh does for Consul: HashiCorp's binaries cannot be downloaded here, their
# source can. consul-template's go.mod has no exclude or replace lines, so `go install module@version`
# builds it with exactly the versions its go.mod pins. The binary is cached by version (~30s cold).
#
# Prints the path of the binary on stdout (and nothing else; progress goes to stderr).
# Env: CONSUL_TEMPLATE_VERSION (default v0.41.1), DYNUP_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/dynup).
set -euo pipefail

version="${CONSUL_TEMPLATE_VERSION:-v0.41.1}"
cache="${DYNUP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dynup}"
dir="$cache/consul-template-$version"
out="$dir/consul-template"

if [ -x "$out" ] && "$out" -version >/dev/null 2>&1; then
  echo "$out"
  exit 0
fi
mkdir -p "$dir"
# One build at a time per version: a second caller waits, then finds the binary built.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9
  if [ -x "$out" ] && "$out" -version >/dev/null 2>&1; then
    echo "$out"
    exit 0
  fi
fi
# Outside any module and with GOFLAGS cleared: `go install m@v` refuses -mod flags, and must not see
# dynup's go.mod or a go.work.
cd "$dir"
echo "building consul-template $version from the Go module proxy into $dir" >&2
GOFLAGS= GOWORK=off GOBIN="$dir" go install -trimpath "github.com/hashicorp/consul-template@$version" >&2
echo "$out"
