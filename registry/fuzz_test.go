package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/dyups"
	"github.com/dynup/dynup/registry/slardar"
)

// The stored upstreams every fuzzed write is applied to: "api", which a body may update, and "other",
// whose domains a body may try to take (a conflict).
func fuzzSeedConfig() map[string]registry.Upstream {
	yes := true
	return map[string]registry.Upstream{
		"api": {Name: "api", Domains: []string{"api.example.com"}, Servers: []registry.Server{{Host: "10.0.0.1", Port: 80, Zone: "a"}},
			LB:          &registry.LoadBalancing{Policy: "ring_hash", HashKeys: []registry.HashKey{{Header: "x-user"}}},
			Retry:       &registry.RetryPolicy{Tries: 2, On: []string{"5xx"}},
			HealthCheck: &registry.HealthCheck{Type: "http", HTTP: &registry.HTTPCheck{Path: "/status"}},
			Protected:   &yes, Routes: []registry.PathRoute{{Host: "gw.example.com", PathPrefix: "/api"}}},
		"other": {Name: "other", Domains: []string{"other.example.com", registry.CatchAll}, Servers: []registry.Server{{Host: "::1", Port: 81}}},
	}
}

// fuzzStore is a file-backed store in a fresh directory holding fuzzSeedConfig (written directly, so no
// fsync per case), and the path of its file.
func fuzzStore(t *testing.T) (*registry.Store, string) {
	t.Helper()
	dir := t.TempDir()
	doc, err := json.Marshal(map[string]any{"revision": 7, "upstreams": fuzzSeedConfig()})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dynup.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	backend, err := registry.NewFileBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.NewStore(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	return store, file
}

// storeImage is everything a store shows and keeps: its state as JSON, its file's bytes and its journal's
// (the file store appends every write there).
func storeImage(t *testing.T, s *registry.Store, file string) string {
	t.Helper()
	st, err := json.Marshal(s.State())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(filepath.Join(filepath.Dir(file), "dynup.journal"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(st) + "\n" + string(b) + "\n" + string(j)
}

// FuzzAdminBody applies a body to the store as POST /upstream/{name} does (Slardar's JSON or dyups' text,
// on top of the stored definition) and checks: no panic; a rejection is a FieldError or ConflictError and
// leaves the state and the file byte for byte unchanged; an accepted write stores exactly what was
// parsed and touches no other upstream.
func FuzzAdminBody(f *testing.F) {
	for _, body := range []string{
		`{"servers":[{"host":"10.0.5.108","port":4001},{"host":"10.0.5.109","port":4001}],"keepalive":20}`,
		`{"cluster":[{"servers":[{"host":"10.0.0.1","port":80}]},{"servers":[{"host":"::1","port":81}]}]}`,
		`{"mode":"header_hash","typ":"http","http_opts":{"query":"GET /s HTTP/1.1\r\nHost: x\r\n\r\n","statuses":{"502":false}}}`,
		`{"servers":[{"host":"10.0.0.1","port":80,"weight":2,"max_fails":3,"fail_timeout":"10s"}],"domains":["*"]}`,
		`{"servers":[{"host":"10.0.0.1","port":80}],"domains":["OTHER.example.com"]}`,
		`{"lb":{"policy":"ring_hash","hash_keys":[{"cookie":{"name":"a","ttl":5}}]},"health_check":{"type":"http"}}`,
		`{"lb":null,"retry":null,"routes":[{"host":"gw.example.com","path_prefix":"/x"}]}`,
		`{"servers":[{"host":"10.0.0.1","port":80,"zone":"b"}],"retry":{"tries":3,"on":["5xx","reset"]}}`,
		`{"servers":[]}`, `{"servers":[{"host":"a.b","port":1}]}`, `{}`, `{"foo":1}`, `[]`, `{`,
		"server 127.0.0.1:8089;server 127.0.0.1:8088 weight=2 max_fails=3 fail_timeout=10s backup;",
		"server [::1]:80 weight=2 max_conns=3; server 10.0.0.2 max_conns=1 down; least_conn; keepalive 2;",
		"server 10.0.0.1; hash $http_x_a consistent; check interval=1000 rise=1 fall=2 timeout=500 type=http;",
		`server 10.0.0.1; check_http_send "GET /s HTTP/1.0\r\nHost: h\r\n\r\n"; check_http_expect_alive http_2xx;`,
		"server 10.0.0.1; ip_hash; hash $uri;", "server a.b;", "server 10.0.0.1:0;", "", "#",
	} {
		f.Add(body, "api")
		f.Add(body, "new")
	}
	f.Fuzz(func(t *testing.T, body, name string) {
		if name != "api" && name != "other" {
			name = "new" // the stored upstreams and one that does not exist; names are checked elsewhere
		}
		store, file := fuzzStore(t)
		before := storeImage(t, store, file)
		var existing *registry.Upstream
		if u, ok := store.Upstream(name); ok {
			existing = &u
		}
		var u registry.Upstream
		var err error
		if t := bytes.TrimSpace([]byte(body)); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			u, err = slardar.Decode(name, []byte(body), existing)
		} else {
			u, err = dyups.Parse(name, body, existing)
		}
		if err == nil && len(u.Servers) == 0 {
			err = &registry.FieldError{Field: "servers", Msg: "no servers"} // the handler's own check
		}
		var want registry.Upstream
		if err == nil {
			// A deep copy: the store keeps the slices it is given.
			if jerr := json.Unmarshal([]byte(mustJSON(t, u)), &want); jerr != nil {
				t.Fatal(jerr)
			}
			_, err = store.PutUpstream(context.Background(), u, "admin")
		}
		if err != nil {
			var fe *registry.FieldError
			var conflict *registry.ConflictError
			if !errors.As(err, &fe) && !errors.As(err, &conflict) {
				t.Fatalf("rejected with %T: %v", err, err)
			}
			if after := storeImage(t, store, file); after != before {
				t.Fatalf("a rejected write (%v) changed the store\nbefore: %s\nafter:  %s", err, before, after)
			}
			return
		}
		st := store.State()
		got, ok := st.Upstream(name)
		if !ok {
			t.Fatalf("accepted %s is not in the state", name)
		}
		want.Normalize()
		for i := range want.Servers {
			want.Servers[i].Source, want.Servers[i].Health = "admin", nil
		}
		if g, w := mustJSON(t, *got), mustJSON(t, want); g != w {
			t.Fatalf("stored\n %s\nparsed\n %s", g, w)
		}
		seed := fuzzSeedConfig()
		for _, other := range st.Upstreams {
			if other.Name == name {
				continue
			}
			s := seed[other.Name]
			for i := range s.Servers {
				s.Servers[i].Source = "admin"
			}
			if g, w := mustJSON(t, other), mustJSON(t, s); g != w {
				t.Fatalf("writing %s changed %s:\n %s\nwas\n %s", name, other.Name, g, w)
			}
		}
		if st.Revision != 8 {
			t.Fatalf("revision %d after one write on revision 7", st.Revision)
		}
	})
}

// FuzzLoadFile opens a store on an arbitrary dynup.json: no panic; a file that does not load is an error
// and is left as it was; one that loads gives a state of valid upstreams.
func FuzzLoadFile(f *testing.F) {
	seed, _ := json.Marshal(map[string]any{"revision": 7, "upstreams": fuzzSeedConfig()})
	for _, doc := range []string{string(seed), `{"revision":1,"upstreams":{}}`, `{}`, `null`, `[]`, `{"upstreams":{"a":{"name":"a","servers":[]}}}`,
		`{"upstreams":{"a":{"name":"b","servers":[{"host":"10.0.0.1","port":80}]}}}`, `{"revision":-1}`, "{",
		`{"upstreams":{"a":{"name":"b","servers":[{"host":"10.0.0.1","port":80}]},"b":{"name":"b","servers":[{"host":"10.0.0.2","port":80}]}}}`} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "dynup.json")
		if err := os.WriteFile(file, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		backend, err := registry.NewFileBackend(dir)
		if err != nil {
			t.Fatal(err)
		}
		store, err := registry.NewStore(context.Background(), backend)
		if after, _ := os.ReadFile(file); !bytes.Equal(after, doc) {
			t.Fatalf("opening the store changed its file (err %v)", err)
		}
		if err != nil {
			return
		}
		ups := store.State().Upstreams
		for i, u := range ups {
			if err := u.Validate(); err != nil {
				t.Fatalf("loaded an invalid upstream %s: %v", u.Name, err)
			}
			// State.Upstream finds upstreams by binary search on the name, and translation makes one
			// cluster per name: names must be unique and sorted.
			if i > 0 && ups[i-1].Name >= u.Name {
				t.Fatalf("upstreams %q and %q out of order or repeated (a file key that is not its upstream's name?)", ups[i-1].Name, u.Name)
			}
		}
	})
}

// FuzzLoadJournal opens a store on a valid dynup.json and an arbitrary dynup.journal: no panic; a journal
// that does not load is an error and leaves both files as they were; one that loads gives a state of
// valid upstreams, folded into the file so that a second start loads the same configuration.
func FuzzLoadJournal(f *testing.F) {
	other, _ := json.Marshal(fuzzSeedConfig()["other"])
	for _, j := range []string{"", "\n", `{"revision":8,"upstreams":{"api":null}}` + "\n",
		`{"revision":8,"upstreams":{"new":` + string(other) + `}}` + "\n",
		`{"revision":8,"upstreams":{"other":` + string(other) + `}}` + "\n" + `{"revision":9,"snippets":{"s":null}}` + "\n",
		`{"revision":3,"upstreams":{"api":null}}` + "\n" + `{"revision":9,"upst`, `{"revision":9}` + "\n" + `{"revision":9}` + "\n"} {
		f.Add([]byte(j))
	}
	file, _ := json.Marshal(map[string]any{"revision": 7, "upstreams": fuzzSeedConfig()})
	f.Fuzz(func(t *testing.T, journal []byte) {
		dir := t.TempDir()
		paths := []string{filepath.Join(dir, "dynup.json"), filepath.Join(dir, "dynup.journal")}
		for i, b := range [][]byte{file, journal} {
			if err := os.WriteFile(paths[i], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		open := func() (*registry.Store, error) {
			backend, err := registry.NewFileBackend(dir)
			if err != nil {
				t.Fatal(err)
			}
			return registry.NewStore(context.Background(), backend)
		}
		store, err := open()
		if err != nil {
			for i, want := range [][]byte{file, journal} {
				if got, _ := os.ReadFile(paths[i]); !bytes.Equal(got, want) {
					t.Fatalf("a failed start changed %s (err %v)", paths[i], err)
				}
			}
			return
		}
		for _, u := range store.State().Upstreams {
			if err := u.Validate(); err != nil {
				t.Fatalf("loaded an invalid upstream %s: %v", u.Name, err)
			}
		}
		again, err := open()
		if err != nil {
			t.Fatalf("the folded file does not load: %v", err)
		}
		if a, b := mustJSON(t, store.State().Upstreams), mustJSON(t, again.State().Upstreams); a != b || store.State().Revision != again.State().Revision {
			t.Fatalf("a second start loads revision %d %s, the first %d %s", again.State().Revision, b, store.State().Revision, a)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
