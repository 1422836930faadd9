#!/usr/bin/env bash
# Benchmark B6 (`make bench-compare`): nginx + consul-template against dynup on one Consul. Opt-in, not
# part of CI. Installs what is missing (Debian's nginx; consul-template and Consul built from the Go module
# proxy and cached under ~/.cache/dynup), builds dynup and the benchmark, and runs it. Flags go to the
# benchmark: bash test/compare/run.sh -changes 10 (see -help).
set -euo pipefail
cd "$(dirname "$0")/../.."

# What this script leaves behind: the run directory's configs and logs (its path is printed), not the binaries.
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

if ! [ -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "run.sh: nginx is missing; install Debian's package: sudo apt-get install nginx" >&2
    exit 1
  fi
  # The package's postinst starts the system nginx on 0.0.0.0:80. The benchmark runs its own on 127.0.0.1,
  # so keep the package from starting a service, unless a policy-rc.d already decides that.
  if ! [ -e /usr/sbin/policy-rc.d ]; then
    cleanup+=(/usr/sbin/policy-rc.d)
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx >&2
fi

consul_template="$(bash test/compare/build-consul-template.sh)"
consul="$(bash test/consulagent/build-consul.sh)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/dynup-compare-XXXXXX")"
cleanup+=("$dir/bin")
"${GO:-go}" build -o "$dir/bin/dynup" ./cmd/dynup
"${GO:-go}" build -o "$dir/bin/compare" ./test/compare
"$dir/bin/compare" -consul-bin "$consul" -consul-template-bin "$consul_template" -nginx-bin /usr/sbin/nginx \
  -dynup-bin "$dir/bin/dynup" -dir "$dir" "$@"
