package publish

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/translate"
)

type revisions struct {
	mu   sync.Mutex
	seen []uint64
	at   chan uint64
}

func (r *revisions) Published(_ string, revision uint64, _ map[string]string) {
	r.mu.Lock()
	r.seen = append(r.seen, revision)
	r.mu.Unlock()
	r.at <- revision
}

// A burst is published as its newest state; the state before it, which came alone, is published at once.
func TestBurstIsCoalesced(t *testing.T) {
	obs := &revisions{at: make(chan uint64, 100)}
	p := New(translate.DefaultOptions(), slog.New(slog.NewTextHandler(io.Discard, nil)), obs)
	p.addGroup(translate.Group{Kind: translate.KindEnvoy})
	// Long windows: the burst ends when the channel closes, so nothing here depends on timing.
	p.SetCoalescing(time.Hour, time.Hour)
	states := make(chan *registry.State, 100)
	done := make(chan struct{})
	go func() { p.Run(states); close(done) }()
	ups := []registry.Upstream{{Name: "a", Servers: []registry.Server{server("10.0.0.1")}}}
	states <- stateOf(1, ups)
	if rev := <-obs.at; rev != 1 {
		t.Fatalf("published %d first, want 1", rev)
	}
	for rev := uint64(2); rev <= 50; rev++ {
		ups[0].Servers = []registry.Server{{Host: "10.0.0.1", Port: int(8000 + rev)}}
		states <- stateOf(rev, ups, "a")
	}
	close(states)
	<-done
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.seen) != 2 || obs.seen[1] != 50 {
		t.Fatalf("published %v, want [1 50]", obs.seen)
	}
}
