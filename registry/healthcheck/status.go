package healthcheck

import (
	"context"
	"strings"
	"time"

	"github.com/dynup/dynup/registry"
)

// ServerStatus is what the checker knows about one server it probes.
type ServerStatus struct {
	Healthy bool      `json:"healthy"`
	Since   time.Time `json:"since"` // when it became healthy (first seen) or unhealthy
	Type    string    `json:"type"`
	// Interval is how often the server is probed.
	Interval             Duration  `json:"interval"`
	ConsecutiveFailures  int       `json:"consecutive_failures"`
	ConsecutiveSuccesses int       `json:"consecutive_successes"`
	Checks               uint64    `json:"checks"`
	LastCheck            time.Time `json:"last_check,omitzero"`
	LastError            string    `json:"last_error,omitempty"`
	LastLatencyMs        float64   `json:"last_latency_ms"`
}

// Duration shows as a Go duration string in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := time.ParseDuration(strings.Trim(string(b), `"`))
	*d = Duration(v)
	return err
}

// Liveness is the checker's own health: checkups' checkup_timer_alive and last_check_time.
type Liveness struct {
	Running bool      `json:"running"`
	Alive   bool      `json:"alive"` // running, and no server's probe is overdue
	Started time.Time `json:"started,omitzero"`
	// LastCheck is when the newest probe began.
	LastCheck time.Time `json:"last_check,omitzero"`
	Servers   int       `json:"servers"`   // servers being probed
	Unhealthy int       `json:"unhealthy"` // of which unhealthy
	// Overdue lists servers whose probe is late: the checker is falling behind (probe limit, stuck probes).
	Overdue []string `json:"overdue,omitempty"`
}

// overdueSlack is how late a probe may be before the checker counts as falling behind.
const overdueSlack = time.Second

// Status returns the checker's liveness and the state of every server it probes.
func (c *Checker) Status() (Liveness, map[registry.ServerKey]ServerStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	l := Liveness{Running: c.running, Started: c.started, LastCheck: c.lastCheck, Servers: len(c.targets), Unhealthy: len(c.unhealthy)}
	out := make(map[registry.ServerKey]ServerStatus, len(c.targets))
	for k, t := range c.targets {
		out[k] = ServerStatus{
			Healthy: t.healthy, Since: t.since, Type: t.check.Type, Interval: Duration(t.check.Interval),
			ConsecutiveFailures: t.failures, ConsecutiveSuccesses: t.successes, Checks: t.checks,
			LastCheck: t.lastCheck, LastError: t.lastError, LastLatencyMs: float64(t.lastLatency.Microseconds()) / 1000,
		}
		last := t.lastCheck
		if last.IsZero() {
			last = t.added
		}
		if now.Sub(last) > 2*t.check.Interval+t.check.Jitter+t.check.Timeout+overdueSlack {
			l.Overdue = append(l.Overdue, k.String())
		}
	}
	l.Alive = l.Running && len(l.Overdue) == 0
	return l, out
}

// Wait blocks until cond (called under no lock) is true after a probe or a change of servers, or ctx ends.
// It is for tests and for callers that must see the checker act.
func (c *Checker) Wait(ctx context.Context, cond func() bool) bool {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}
