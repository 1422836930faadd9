package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func up(name string, hostPorts ...int) Upstream {
	u := Upstream{Name: name}
	for _, p := range hostPorts {
		u.Servers = append(u.Servers, Server{Host: "10.0.0.1", Port: p})
	}
	return u
}

func newFileStore(t *testing.T, dir string) *Store {
	t.Helper()
	b, err := NewFileBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStorePersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := newFileStore(t, dir)
	ctx := context.Background()
	if _, err := s.PutUpstream(ctx, up("a", 80, 81), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUpstream(ctx, up("b", 90), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUpstream(ctx, "a", "admin"); err != nil {
		t.Fatal(err)
	}
	before := s.State()
	after := newFileStore(t, dir).State()
	if after.Revision != 3 || after.Revision != before.Revision || after.Hash != before.Hash {
		t.Fatalf("after reload: revision %d hash %s; before: %d %s", after.Revision, after.Hash, before.Revision, before.Hash)
	}
	if names := after.Names(); len(names) != 1 || names[0] != "b" {
		t.Fatalf("after reload: %v", names)
	}
	if after.Upstreams[0].Servers[0].Source != "admin" {
		t.Fatalf("server source %q, want admin", after.Upstreams[0].Servers[0].Source)
	}
}

type failingBackend struct{ FileBackend }

func (failingBackend) Save(context.Context, Config, Change) error {
	return errors.New("disk full")
}

// switchedBackend fails every save while fail is set.
type switchedBackend struct {
	FileBackend
	fail bool
}

func (b *switchedBackend) Save(ctx context.Context, next Config, c Change) error {
	if b.fail {
		return errors.New("disk full")
	}
	return b.FileBackend.Save(ctx, next, c)
}

// Writes edit the configuration in place: a failed save must put back every upstream it touched, and a
// refused write must leave them as they were.
func TestFailedSaveLeavesTheConfigurationAsItWas(t *testing.T) {
	ctx := context.Background()
	fb, err := NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &switchedBackend{FileBackend: *fb}
	s, err := NewStore(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []Upstream{up("a", 80), up("b", 81)} {
		if _, err := s.PutUpstream(ctx, u, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	want := mustJSON(s.cfg)
	b.fail = true
	if _, err := s.PutUpstream(ctx, up("a", 90), "admin"); err == nil {
		t.Fatal("a replacement was saved on a failing backend")
	}
	if _, err := s.PutUpstream(ctx, up("c", 90), "admin"); err == nil {
		t.Fatal("a new upstream was saved on a failing backend")
	}
	if _, err := s.DeleteUpstream(ctx, "b", "admin"); err == nil {
		t.Fatal("a delete was saved on a failing backend")
	}
	b.fail = false
	conflicting := up("c", 80)
	conflicting.Domains = []string{"a"}
	if _, err := s.PutUpstream(ctx, conflicting, "admin"); err == nil {
		t.Fatal("a domain taken by a was given to c")
	}
	if got := mustJSON(s.cfg); got != want {
		t.Fatalf("the configuration is\n%s\nwant\n%s", got, want)
	}
	again, err := NewStore(ctx, fb)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(again.cfg); got != want {
		t.Fatalf("after a restart the configuration is\n%s\nwant\n%s", got, want)
	}
}

func TestFailedSaveChangesNothing(t *testing.T) {
	s, err := NewStore(context.Background(), &failingBackend{FileBackend{path: t.TempDir() + "/x.json"}})
	if err != nil {
		t.Fatal(err)
	}
	states, cancel := s.Subscribe()
	defer cancel()
	<-states
	_, err = s.PutUpstream(context.Background(), up("a", 80), "admin")
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("err %v, want UnavailableError", err)
	}
	if st := s.State(); st.Revision != 0 || len(st.Upstreams) != 0 {
		t.Fatalf("state changed: %+v", st)
	}
	select {
	case st := <-states:
		t.Fatalf("a state was published: revision %d", st.Revision)
	default:
	}
}

func TestDomainServedTwiceIsAConflict(t *testing.T) {
	s := newFileStore(t, t.TempDir())
	ctx := context.Background()
	a := up("a", 80)
	a.Domains = []string{"img.example.com"}
	if _, err := s.PutUpstream(ctx, a, "admin"); err != nil {
		t.Fatal(err)
	}
	b := up("b", 80)
	b.Domains = []string{"IMG.example.com"} // domains are case-insensitive
	_, err := s.PutUpstream(ctx, b, "admin")
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("err %v, want ConflictError", err)
	}
	// An upstream named like another's domain claims that domain too.
	if _, err := s.PutUpstream(ctx, up("img.example.com", 80), "admin"); !errors.As(err, &conflict) {
		t.Fatalf("err %v, want ConflictError", err)
	}
	// So does an existing upstream that changes its domains (a write that keeps them skips the check).
	if _, err := s.PutUpstream(ctx, up("b", 80), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUpstream(ctx, b, "admin"); !errors.As(err, &conflict) {
		t.Fatalf("err %v, want ConflictError", err)
	}
	if _, err := s.PutUpstream(ctx, up("b", 81), "admin"); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.Revision != 3 {
		t.Fatalf("revision %d after rejected writes, want 3", st.Revision)
	}
}

func TestDiscoveredServersMerge(t *testing.T) {
	s := newFileStore(t, t.TempDir())
	ctx := context.Background()
	static := up("web", 80)
	static.Servers[0].Weight = 5
	if _, err := s.PutUpstream(ctx, static, "admin"); err != nil {
		t.Fatal(err)
	}
	claim := up("api", 80)
	claim.Domains = []string{"orders"}
	if _, err := s.PutUpstream(ctx, claim, "admin"); err != nil {
		t.Fatal(err)
	}
	st := s.SetDiscovered("consul-catalog", Discovered{
		"web":    {Servers: []Server{{Host: "10.0.0.1", Port: 80, Source: "consul"}, {Host: "10.0.0.2", Port: 80, Source: "consul"}}},
		"orders": {Servers: []Server{{Host: "10.0.0.3", Port: 80, Source: "consul"}}},
		"cart":   {Servers: []Server{{Host: "10.0.0.4", Port: 80, Source: "consul"}}, Domains: []string{"cart.example.com"}},
	})
	web, ok := st.Upstream("web")
	if !ok || len(web.Servers) != 2 {
		t.Fatalf("web: %+v", web)
	}
	if web.Servers[0].Weight != 5 || web.Servers[0].Source != "admin" || web.Servers[1].Source != "consul" {
		t.Errorf("static server must win at the same address: %+v", web.Servers)
	}
	if cart, ok := st.Upstream("cart"); !ok || len(cart.Domains) != 1 {
		t.Errorf("a discovered service without configuration must become an upstream with its domains: %+v", cart)
	}
	if _, ok := st.Upstream("orders"); ok || len(st.Warnings) != 1 {
		t.Errorf("discovered 'orders' collides with api's domain: want it dropped with a warning, got warnings %v", st.Warnings)
	}
	if got := st.Change.Upstreams; len(got) != 3 {
		t.Errorf("change lists %v, want cart, orders, web", got)
	}
	// The same discovery again changes nothing and publishes nothing.
	if again := s.SetDiscovered("consul-catalog", Discovered{
		"web":    {Servers: []Server{{Host: "10.0.0.1", Port: 80, Source: "consul"}, {Host: "10.0.0.2", Port: 80, Source: "consul"}}},
		"orders": {Servers: []Server{{Host: "10.0.0.3", Port: 80, Source: "consul"}}},
		"cart":   {Servers: []Server{{Host: "10.0.0.4", Port: 80, Source: "consul"}}, Domains: []string{"cart.example.com"}},
	}); again.Revision != st.Revision {
		t.Errorf("identical discovery bumped the revision to %d", again.Revision)
	}
}

func TestSlowSubscriberGetsTheNewestState(t *testing.T) {
	s := newFileStore(t, t.TempDir())
	states, cancel := s.Subscribe()
	defer cancel()
	for p := 1; p <= 5; p++ {
		if _, err := s.PutUpstream(context.Background(), up("a", p), "admin"); err != nil {
			t.Fatal(err)
		}
	}
	if st := <-states; st.Revision != 5 {
		t.Fatalf("subscriber got revision %d, want the newest, 5", st.Revision)
	}
}

func TestHashDependsOnContentOnly(t *testing.T) {
	ctx := context.Background()
	s1, s2 := newFileStore(t, t.TempDir()), newFileStore(t, t.TempDir())
	s1.PutUpstream(ctx, up("x", 1), "admin")
	s1.PutUpstream(ctx, up("a", 80), "admin")
	s1.DeleteUpstream(ctx, "x", "admin")
	s2.PutUpstream(ctx, up("a", 80), "admin")
	if s1.State().Hash != s2.State().Hash || s1.State().Revision == s2.State().Revision {
		t.Fatalf("same content, different history: hashes %s and %s", s1.State().Hash, s2.State().Hash)
	}
}

// Every part of the content changes the hash: each upstream (wherever it sorts), their order and
// count, and the active snippets.
func TestContentHashCoversEveryPart(t *testing.T) {
	ups := []Upstream{{Name: "a", Servers: []Server{{Host: "10.0.0.1", Port: 80}}}, {Name: "b", Domains: []string{"b.example"}},
		{Name: "c", Servers: []Server{{Host: "10.0.0.3", Port: 80}}}}
	hash := func(ups []Upstream, snippets []ActiveSnippet) string {
		digests := make([]upstreamDigest, len(ups))
		for i := range ups {
			digests[i] = digestUpstream(&ups[i])
		}
		return contentHash(digests, snippets)
	}
	seen := map[string]string{}
	add := func(what, h string) {
		t.Helper()
		if other, ok := seen[h]; ok {
			t.Fatalf("%s and %s have the same hash %s", what, other, h)
		}
		seen[h] = what
	}
	add("all", hash(ups, nil))
	for i := range ups {
		changed := slices.Clone(ups)
		changed[i].Keepalive = 7
		add("upstream "+changed[i].Name+" changed", hash(changed, nil))
	}
	add("one fewer", hash(ups[:2], nil))
	add("none", hash(nil, nil))
	add("reordered", hash([]Upstream{ups[1], ups[0], ups[2]}, nil))
	add("with a snippet", hash(ups, []ActiveSnippet{{Name: "s"}}))
	if hash(slices.Clone(ups), nil) != hash(ups, nil) {
		t.Fatal("the same content gave two hashes")
	}
}
