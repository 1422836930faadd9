package registry

import (
	"context"
	"testing"
	"time"
)

func TestSetHealthMarksAndProtects(t *testing.T) {
	fb, err := NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(context.Background(), fb)
	if err != nil {
		t.Fatal(err)
	}
	u := Upstream{Name: "web", Servers: []Server{{Host: "10.0.0.1", Port: 80}, {Host: "10.0.0.2", Port: 80}}}
	if _, err := st.PutUpstream(context.Background(), u, "admin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	one := ServerKey{Upstream: "web", Host: "10.0.0.1", Port: 80}
	two := ServerKey{Upstream: "web", Host: "10.0.0.2", Port: 80}

	s := st.SetHealth("active", map[ServerKey]Verdict{one: {Reason: "connect refused", Since: t0}})
	if s.Change.Source != "health/active" || len(s.Change.Upstreams) != 1 {
		t.Fatalf("change = %+v", s.Change)
	}
	w, _ := s.Upstream("web")
	if w.Servers[0].Health == nil || w.Servers[0].Health.Reason != "connect refused" || w.Servers[1].Health != nil {
		t.Fatalf("servers = %+v", w.Servers)
	}
	rev := s.Revision
	if again := st.SetHealth("active", map[ServerKey]Verdict{one: {Reason: "connect refused", Since: t0}}); again.Revision != rev {
		t.Fatal("the same verdicts must not make a new revision")
	}

	// Both out: the protected upstream keeps the newest one in service, with a warning.
	s = st.SetHealth("feedback", map[ServerKey]Verdict{two: {Reason: "3 failures in 10s", Since: t0.Add(time.Second)}})
	w, _ = s.Upstream("web")
	if w.Servers[0].Health == nil || w.Servers[1].Health != nil || len(s.Warnings) != 1 {
		t.Fatalf("protected: servers = %+v, warnings = %+v", w.Servers, s.Warnings)
	}

	// A removed server's verdict has no effect; clearing a source brings servers back.
	s = st.SetHealth("active", nil)
	s = st.SetHealth("feedback", nil)
	w, _ = s.Upstream("web")
	if w.Servers[0].Health != nil || w.Servers[1].Health != nil {
		t.Fatalf("cleared: servers = %+v", w.Servers)
	}
}
