# dynup's make targets. Everything else is plain go commands (see README.md).
#
#   make demo-local   the demo's topology as local processes, no Docker needed (docs/demo.md)
#   make test         every test, as CI runs them (test/all.sh)
#   make bootstraps   regenerate the Envoy bootstraps in envoy/ after changing the generator
#   make bench-compare   benchmark B6: nginx + consul-template against dynup on one Consul (opt-in, not in CI)

GO ?= go

.PHONY: demo-local test bootstraps bench-compare

# Consul is built from the Go module proxy the first time (~8 minutes) and cached; demo/local builds dynup,
# the demo backends and the xDS client, then runs them all on 127.0.0.1 until Ctrl-C. DEMO_FLAGS passes
# flags on, e.g. DEMO_FLAGS="--listen 127.0.0.1:10001" (see go run ./demo/local --help).
demo-local:
	@consul="$$(bash test/consulagent/build-consul.sh)" && \
	  dir="$$(mktemp -d "$${TMPDIR:-/tmp}/dynup-demo-local-XXXXXX")" && \
	  $(GO) build -o "$$dir/bin/demo-local" ./demo/local && \
	  exec "$$dir/bin/demo-local" --consul-bin "$$consul" --dir "$$dir" $(DEMO_FLAGS)

test:
	bash test/all.sh

bootstraps:
	$(GO) test ./envoy/bootstrap -run TestGoldenFiles -update

# Installs Debian's nginx if missing, builds consul-template and Consul from the Go module proxy (cached under
# ~/.cache/dynup), then runs 100 registration changes against both (test/compare/main.go says what it measures).
# COMPARE_FLAGS passes flags on, e.g. COMPARE_FLAGS="-changes 10" (see go run ./test/compare -help).
bench-compare:
	GO="$(GO)" bash test/compare/run.sh $(COMPARE_FLAGS)
