// Package consul feeds the registry from Consul: the catalog (services and their healthy instances) as
// discovered servers, and KV as the configuration backend with check-and-set writes.
package consul

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
)

// Options configure every Consul watch.
type Options struct {
	// WaitTime is how long one blocking query may wait for a change.
	WaitTime time.Duration
	// Stale lets any Consul server answer (faster, may lag the leader slightly).
	Stale bool
	// MaxBackoff caps the wait between retries after errors.
	MaxBackoff time.Duration
}

func (o Options) withDefaults() Options {
	if o.WaitTime == 0 {
		o.WaitTime = 5 * time.Minute
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	return o
}

// blockingQuery runs fetch as a Consul blocking query until ctx ends, calling apply with each result whose
// index moved. fetch returns the new index. Errors back off exponentially (capped) and are recorded in
// status; the last good result stays applied, because an error is not an empty answer.
func blockingQuery(ctx context.Context, opts Options, status *statusCell, fetch func(q *api.QueryOptions) (uint64, error)) {
	var index uint64
	backoff := 100 * time.Millisecond
	kind := watchKind(status.get().Name)
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: opts.WaitTime, AllowStale: opts.Stale}).WithContext(ctx)
		start := time.Now()
		next, err := fetch(q)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			watchCalls.WithLabelValues(kind, "error").Observe(time.Since(start).Seconds())
			watchErrors.WithLabelValues(kind).Inc()
			status.fail(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, opts.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		outcome := "change"
		if next == index {
			outcome = "unchanged"
		}
		watchCalls.WithLabelValues(kind, outcome).Observe(time.Since(start).Seconds())
		// Consul's index can go backwards (a snapshot restore, a new cluster): start over rather than
		// wait for an index that will not come. Index 0 would not block at all, so it counts as 1.
		switch {
		case next < index:
			index = 0
		case next == 0:
			index = 1
		default:
			index = next
		}
		status.ok(index)
	}
}

// statusCell is one source's status, safe for the watch and the admin API to share.
type statusCell struct {
	mu sync.Mutex
	s  registry.SourceStatus
}

func newStatus(name string) *statusCell { return &statusCell{s: registry.SourceStatus{Name: name}} }

func (c *statusCell) ok(index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.LastIndex, c.s.LastSuccess, c.s.Failures = index, time.Now(), 0
}

func (c *statusCell) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.LastError, c.s.LastErrorAt = err.Error(), time.Now()
	c.s.Failures++
}

func (c *statusCell) get() registry.SourceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}
