package feedback

import (
	"time"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/healthcheck"
)

// ServerStatus is the tracker's view of one server.
type ServerStatus struct {
	Out      bool      `json:"out"`
	Since    time.Time `json:"since,omitzero"`     // when it was taken out
	OutUntil time.Time `json:"out_until,omitzero"` // when it comes back
	Reason   string    `json:"reason,omitempty"`
	// The server's limits: its own, else the upstream's passive settings, else the defaults.
	MaxFails    int                  `json:"max_fails"`
	FailTimeout healthcheck.Duration `json:"fail_timeout"`
	// The open window: failures and successes counted in it, and how many reporters saw failures.
	WindowStart time.Time `json:"window_start,omitzero"`
	Failures    uint64    `json:"failures"`
	Successes   uint64    `json:"successes"`
	Reporters   int       `json:"reporters"`
	// Since the server appeared.
	TotalFailures  uint64    `json:"total_failures"`
	TotalSuccesses uint64    `json:"total_successes"`
	LastFailure    time.Time `json:"last_failure,omitzero"`
	LastReporter   string    `json:"last_reporter,omitempty"`
}

// Liveness sums up the tracker.
type Liveness struct {
	Reports    uint64    `json:"reports"`
	LastReport time.Time `json:"last_report,omitzero"`
	Out        int       `json:"out"` // servers out now
}

// Status returns the tracker's summary and every server's accounting.
func (t *Tracker) Status() (Liveness, map[registry.ServerKey]ServerStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[registry.ServerKey]ServerStatus, len(t.servers))
	for k, s := range t.servers {
		out[k] = statusOf(s)
	}
	return Liveness{Reports: t.reports, LastReport: t.last, Out: len(t.out)}, out
}

func statusOf(s *tracked) ServerStatus {
	w := &s.w
	return ServerStatus{
		Out: w.out, Since: w.outSince, OutUntil: w.outUntil, Reason: w.reason,
		MaxFails: s.passive.MaxFails, FailTimeout: healthcheck.Duration(s.passive.FailTimeout),
		WindowStart: w.start, Failures: w.failures, Successes: w.successes, Reporters: len(w.reporters),
		TotalFailures: w.totalFailures, TotalSuccesses: w.totalSuccesses, LastFailure: w.lastFailure, LastReporter: w.lastReporter,
	}
}
