package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dynup/dynup/test/harness"
)

// The load tool at a small size: a fleet of both protocols and two kinds of node, a few one-endpoint
// changes, a reconnect. It proves the tool works and that an endpoint change is served as one: ACKed
// everywhere, one encode per group for its endpoints and one for its cluster, no cluster responses.
// Figures are not checked here: they are benchmarks (docs/benchmarks.md), not tests. Both decodings: full
// (messages) and light (the fleet reads and writes the wire format itself, see wire.go).
func TestLoadToolSmallRun(t *testing.T) {
	for _, decode := range []string{"full", "light"} {
		t.Run(decode, func(t *testing.T) { smallRun(t, decode) })
	}
}

func smallRun(t *testing.T, decode string) {
	cfg, err := parseFlags([]string{"-streams", "24", "-protocol", "mixed", "-zones", "a,b", "-kinds", "envoy,grpc",
		"-upstreams", "20", "-servers", "4", "-changes", "3", "-change-gap", "0s", "-settle", "0s", "-reconnect",
		"-decode", decode, "-timeout", "3m", "-dynup-bin", harness.DynupBinary(t)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res, err := run(context.Background(), cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 4 {
		t.Errorf("groups %v, want envoy and grpc in two zones", res.Groups)
	}
	c := res.Changes
	if c.Completed != 3 || c.FromAccepted.N != 3*24 {
		t.Errorf("%d changes completed with %d ACKs, want 3 with 72", c.Completed, c.FromAccepted.N)
	}
	if c.NoCDS == nil || !*c.NoCDS {
		t.Errorf("an endpoint change sent clusters: %v", c.ResponsesPer)
	}
	if c.EncodesPer == nil || *c.EncodesPer != 2*4 {
		t.Errorf("encodes per change %v, want a cluster and an assignment in each of 4 groups", optional(c.EncodesPer, "%.1f"))
	}
	if got := c.ResponsesPer["ClusterLoadAssignment"]; got != 24 {
		t.Errorf("%v endpoint responses per change, want one per stream", got)
	}
	if res.Connect.StreamErrors != 0 || res.Reconnect == nil || res.Reconnect.StreamErrors != 0 {
		t.Errorf("stream errors: %d connecting, reconnect %+v", res.Connect.StreamErrors, res.Reconnect)
	}
	if res.Changes.FromAccepted.Max <= 0 || res.Changes.FromAccepted.Max > float64(time.Minute.Milliseconds()) {
		t.Errorf("implausible latency %+v", res.Changes.FromAccepted)
	}
}
