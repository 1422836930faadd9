package feedback

import (
	"fmt"
	"time"

	"github.com/dynup/dynup/registry/healthcheck"
)

// window is checkups' failure accounting for one server, fed by every reporter in the fleet: the first
// failure opens a window of fail_timeout; max_fails failures inside it take the server out for
// fail_timeout from that moment; then it is back with a clean count. Successes are counted for the status
// view only: in checkups (and nginx) a success does not cancel failures inside the window, and one node's
// successes must not hide another node's failures.
type window struct {
	start     time.Time // zero: no window open
	failures  uint64
	successes uint64
	reporters map[string]uint64 // failures per reporter in the window

	out      bool
	outSince time.Time
	outUntil time.Time
	reason   string

	// Totals since the server appeared, for the status view.
	totalFailures  uint64
	totalSuccesses uint64
	lastFailure    time.Time
	lastReporter   string
}

// add counts a report at now and says whether it took the server out.
func (w *window) add(now time.Time, p healthcheck.Passive, reporter string, failures, successes uint64) bool {
	w.totalSuccesses += successes
	if failures > 0 {
		w.totalFailures += failures
		w.lastFailure, w.lastReporter = now, reporter
	}
	if p.Off() || w.out {
		// Off: nothing is counted. Out: failures seen by nodes that do not have the news yet must not make
		// the time out longer than fail_timeout.
		return false
	}
	if w.start.IsZero() || now.Sub(w.start) >= p.FailTimeout {
		if failures == 0 {
			w.start = time.Time{}
			w.failures, w.successes, w.reporters = 0, 0, nil
			return false
		}
		w.start, w.failures, w.successes, w.reporters = now, 0, 0, map[string]uint64{}
	}
	w.successes += successes
	if failures == 0 {
		return false
	}
	w.failures += failures
	w.reporters[reporter] += failures
	if w.failures < uint64(p.MaxFails) {
		return false
	}
	w.out, w.outSince, w.outUntil = true, now, now.Add(p.FailTimeout)
	w.reason = fmt.Sprintf("%d failures from %d reporter(s) within %s (max_fails %d)", w.failures, len(w.reporters), p.FailTimeout, p.MaxFails)
	return true
}

// expire brings the server back when its time out is over, and says whether it did.
func (w *window) expire(now time.Time) bool {
	if !w.out || now.Before(w.outUntil) {
		return false
	}
	w.out, w.reason = false, ""
	w.outSince, w.outUntil = time.Time{}, time.Time{}
	w.start, w.failures, w.successes, w.reporters = time.Time{}, 0, 0, nil
	return true
}

// release brings the server back at once (its accounting was turned off).
func (w *window) release() bool {
	if !w.out {
		return false
	}
	w.outUntil = time.Time{}
	return w.expire(time.Time{})
}
