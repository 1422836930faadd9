#!/usr/bin/env bash
# Builds a Consul agent from the Go module proxy, for dynup's tests.
#
# Consul publishes no binaries we can download here, but its source is on the module proxy. A throwaway
# module requires github.com/hashicorp/consul at a pinned version and copies Consul's own `exclude` lines
# (they are not inherited by dependants, and without them `go build` picks module versions Consul cannot
# compile with). The binary is cached by version: a cold build takes ~8 minutes, a warm one is a no-op.
#
# Prints the path of the binary on stdout (and nothing else; progress goes to stderr).
# Env: CONSUL_VERSION (default v1.22.0), DYNUP_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/dynup).
# test/consulagent/consulagent.go computes the same cached path: keep the two in step.
set -euo pipefail

version="${CONSUL_VERSION:-v1.22.0}"
cache="${DYNUP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dynup}"
out="$cache/consul-$version/consul"

if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache/consul-$version"

# One build at a time per version: a second caller waits, then finds the binary built.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/consul-$version/.lock"
  flock 9
  if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
    echo "$out"
    exit 0
  fi
fi

# Start from an empty module every time: the steps below append to go.mod and go.sum and are not
# idempotent, and a half-finished earlier attempt must not leak into this one.
work="$cache/consul-$version/module"
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export GOFLAGS=-mod=mod
go mod init dynup.local/consulbuild >&2

# Consul's own nested modules (envoyextensions, troubleshoot) are tagged separately and, for some
# releases, the checksum database reachable through the module proxy has no record of them
# ("verifying go.mod: ... sumdb ... 404 Not Found"). Pin their hashes here: with the lines present in
# go.sum the go command verifies the downloads against them and does not consult the checksum database.
# The pins were computed from the proxy's downloads of these exact versions (trust on first use).
case "$version" in
  v1.22.0)
    cat >>go.sum <<'SUM'
github.com/hashicorp/consul/envoyextensions v0.9.0 h1:cjCQQKHZTDfivjmMlzzDvpwudjSdlMyiT0rw/ExbJLk=
github.com/hashicorp/consul/envoyextensions v0.9.0/go.mod h1:1SqIWCjKtgbHU2ThOtznAxDktkbRCWm/wgNjIuDM/r0=
github.com/hashicorp/consul/troubleshoot v0.8.0 h1:bgOY5JMsBQmrlhmNz97v4CnSr0ppb7Ob2fwPeDAn3hQ=
github.com/hashicorp/consul/troubleshoot v0.8.0/go.mod h1:+9DFCMwOdlcHI3OWwnIajaUr35GDgD+9NwNi630hGIY=
SUM
    ;;
esac

# Consul's go.mod, as the proxy serves it, holds the exclude lines we need to copy.
go mod download -json "github.com/hashicorp/consul@$version" >/dev/null
modfile="$(go env GOMODCACHE)/cache/download/github.com/hashicorp/consul/@v/$version.mod"
awk '
  /^exclude \($/ { inblock = 1; print; next }
  inblock { print; if ($0 ~ /^\)$/) inblock = 0; next }
  /^exclude / { print }
' "$modfile" >>go.mod
go mod edit -require="github.com/hashicorp/consul@$version"
cat >tools.go <<'GO'
//go:build tools

package consulbuild

import _ "github.com/hashicorp/consul"
GO
go mod tidy -e >&2 || true
go build -trimpath -o "$out.tmp" github.com/hashicorp/consul >&2
mv "$out.tmp" "$out"
echo "$out"
