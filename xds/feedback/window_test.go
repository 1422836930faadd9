package feedback

import (
	"testing"
	"time"

	"github.com/dynup/dynup/registry/healthcheck"
)

func TestWindowRule(t *testing.T) {
	p := healthcheck.Passive{MaxFails: 3, FailTimeout: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	var w window
	// Two failures, then the window (opened by the first) runs out: the count starts again.
	if w.add(at(0), p, "a", 1, 0) || w.add(at(5), p, "b", 1, 0) {
		t.Fatal("out before max_fails")
	}
	if w.add(at(10), p, "c", 1, 5) || w.failures != 1 || !w.start.Equal(at(10)) {
		t.Fatalf("a failure after fail_timeout opens a new window: %+v", w)
	}
	// Successes do not cancel failures inside the window.
	w.add(at(11), p, "a", 0, 100)
	if !w.add(at(12), p, "b", 2, 0) {
		t.Fatalf("3 failures from 3 reporters within 10s must take the server out: %+v", w)
	}
	if !w.out || !w.outUntil.Equal(at(22)) || len(w.reporters) != 2 || w.reason == "" {
		t.Fatalf("out state: %+v", w)
	}
	// Failures while out (from nodes that do not know yet) do not extend the time out.
	if w.add(at(20), p, "c", 5, 0) || !w.outUntil.Equal(at(22)) {
		t.Fatalf("failures while out changed the time out: %+v", w)
	}
	if w.expire(at(21.9)) {
		t.Fatal("back before fail_timeout")
	}
	if !w.expire(at(22)) || w.out || w.failures != 0 || !w.start.IsZero() {
		t.Fatalf("after fail_timeout the server is back with a clean count: %+v", w)
	}
	if w.totalFailures != 10 || w.lastReporter != "c" {
		t.Fatalf("totals: %+v", w)
	}
	// Passive accounting off: nothing counts.
	var off window
	if off.add(at(0), healthcheck.Passive{MaxFails: 0, FailTimeout: time.Second}, "a", 100, 0) || off.out {
		t.Fatal("max_fails 0 must never take a server out")
	}
	// One report carrying max_fails errors is enough (an LRS report sums an interval).
	var burst window
	if !burst.add(at(0), p, "lrs:envoy-1", 3, 7) {
		t.Fatal("a report with 3 errors must take the server out")
	}
	if !burst.release() || burst.out {
		t.Fatal("release must bring the server back")
	}
}
