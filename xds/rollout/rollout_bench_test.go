package rollout

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
)

// benchLog is a change log that keeps the newest 256 changes, as the store does.
type benchLog struct {
	mu      sync.Mutex
	history []registry.Change
}

func (l *benchLog) add(rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.history = append(l.history, registry.Change{Revision: rev, Source: "admin", Upstreams: []string{"svc"}, AcceptedAt: time.Now()})
	if len(l.history) > 256 {
		l.history = append([]registry.Change(nil), l.history[len(l.history)-256:]...)
	}
}

func (l *benchLog) Changes(from, to uint64) []registry.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []registry.Change
	for _, c := range l.history {
		if c.Revision > from && (to == 0 || c.Revision <= to) {
			out = append(out, c)
		}
	}
	return out
}

const benchEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

// BenchmarkChangeAcked measures following one endpoint change across every stream of a group: the publish,
// then each stream's ACK of the new endpoints version, with a full change log behind it.
func BenchmarkChangeAcked(b *testing.B) {
	for _, streams := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			log := &benchLog{}
			tr := New(log)
			rev := uint64(0)
			publish := func() string {
				rev++
				log.add(rev)
				v := fmt.Sprintf("v%d", rev)
				tr.Published("envoy", rev, map[string]string{benchEDS: v})
				return v
			}
			for i := 0; i < 300; i++ { // a full history
				publish()
			}
			v := publish()
			for id := int64(0); id < int64(streams); id++ {
				tr.Opened(id, "envoy")
				tr.Sent(id, benchEDS)
				tr.Acked(id, benchEDS, v, time.Now())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v := publish()
				now := time.Now()
				for id := int64(0); id < int64(streams); id++ {
					tr.Sent(id, benchEDS)
					tr.Acked(id, benchEDS, v, now)
				}
			}
		})
	}
}
