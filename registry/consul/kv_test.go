package consul

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/test/consulagent"
)

func upstream(name string, port int) registry.Upstream {
	return registry.Upstream{Name: name, Servers: []registry.Server{{Host: "10.0.0.1", Port: port}}}
}

// Two writers that read the same version: the first write wins, the second is a conflict and writes nothing.
func TestKVCheckAndSet(t *testing.T) {
	agent := consulagent.Start(t)
	client := agent.Client(t)
	ctx := context.Background()
	one, two := NewKV(client, "dynup/", Options{}), NewKV(client, "dynup/", Options{})
	s1, err := registry.NewStore(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.PutUpstream(ctx, upstream("web", 80), "admin"); err != nil {
		t.Fatal(err)
	}
	s2, err := registry.NewStore(ctx, two) // reads web at its current index
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.PutUpstream(ctx, upstream("web", 81), "admin"); err != nil {
		t.Fatal(err)
	}
	_, err = s2.PutUpstream(ctx, upstream("web", 82), "admin") // based on what it read before s1's write
	var conflict *registry.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("stale write: %v, want a conflict", err)
	}
	pair, _, err := client.KV().Get("dynup/upstreams/web", nil)
	if err != nil || pair == nil {
		t.Fatal(err)
	}
	if u, _ := s2.Upstream("web"); u.Servers[0].Port != 80 {
		t.Fatalf("the conflicting store changed its state: %+v", u)
	}
	// A create races the same way: a key that appeared since the read is not overwritten.
	if _, err := client.KV().Put(&api.KVPair{Key: "dynup/upstreams/new", Value: []byte(`{"servers":[{"host":"10.0.0.9","port":1}]}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.PutUpstream(ctx, upstream("new", 2), "admin"); !errors.As(err, &conflict) {
		t.Fatalf("create over an existing key: %v, want a conflict", err)
	}
}

// A watch result read before one of our writes, decoded after it, must not take back the modify indexes
// that write set: the next write of the same key would be refused as stale.
func TestKVOlderReadKeepsOurWritesIndexes(t *testing.T) {
	agent := consulagent.Start(t)
	client := agent.Client(t)
	ctx := context.Background()
	kv := NewKV(client, "dynup/", Options{})
	s, err := registry.NewStore(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUpstream(ctx, upstream("web", 80), "admin"); err != nil {
		t.Fatal(err)
	}
	before, meta, err := client.KV().List("dynup/", nil) // what a watch read before the next write
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUpstream(ctx, upstream("web", 81), "admin"); err != nil {
		t.Fatal(err)
	}
	kv.decode(before, meta.LastIndex) // the watch gets round to it only now
	if _, err := s.PutUpstream(ctx, upstream("web", 82), "admin"); err != nil {
		t.Fatalf("a write after an older read was decoded: %v", err)
	}
}

// A key that does not decode is dropped with a warning; the others load.
func TestKVBadKeyIsDroppedWithAWarning(t *testing.T) {
	agent := consulagent.Start(t)
	client := agent.Client(t)
	for key, value := range map[string]string{
		"dynup/upstreams/good": `{"servers":[{"host":"10.0.0.1","port":80}],"keepalive":20}`,
		"dynup/upstreams/bad":  `{"servers":[{"host":"10.0.0.1","port":80}],"colour":"blue"}`,
	} {
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	kv := NewKV(client, "dynup/", Options{})
	s, err := registry.NewStore(context.Background(), kv)
	if err != nil {
		t.Fatal(err)
	}
	if names := s.State().Names(); len(names) != 1 || names[0] != "good" {
		t.Fatalf("loaded %v, want [good]", names)
	}
	if w := kv.Warnings(); len(w) != 1 || w[0].Object != "consul-kv/dynup/upstreams/bad" {
		t.Fatalf("warnings %v", w)
	}
}

// Unreachable Consul: the write fails as unavailable and nothing changes.
func TestKVUnreachableChangesNothing(t *testing.T) {
	agent := consulagent.Start(t)
	client := agent.Client(t)
	s, err := registry.NewStore(context.Background(), NewKV(client, "dynup/", Options{}))
	if err != nil {
		t.Fatal(err)
	}
	agent.Stop(t)
	_, err = s.PutUpstream(context.Background(), upstream("web", 80), "admin")
	var unavailable *registry.UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("err %v, want unavailable", err)
	}
	if s.State().Revision != 0 {
		t.Fatal("state changed")
	}
}
