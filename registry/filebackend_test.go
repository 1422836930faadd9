package registry

import (
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadCopy loads a copy of dir's files, as a restart after a crash at this point would, with a backend of
// its own: the running one keeps its journal open and its sizes.
func loadCopy(t *testing.T, dir string) (Config, uint64) {
	t.Helper()
	cp := t.TempDir()
	for _, name := range []string{"dynup.json", "dynup.journal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fb, err := NewFileBackend(cp)
	if err != nil {
		t.Fatal(err)
	}
	cfg, rev, err := fb.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg, rev
}

// After every write, file and journal together load as the whole configuration at its revision, whether
// the write was appended or folded the journal into the file (then written as json.MarshalIndent writes
// the configuration).
func TestDataDirHoldsTheConfigurationAfterEveryWrite(t *testing.T) {
	// A journal entry carries the configuration's fields by name: a new field must be taught to it.
	var fields []string
	for i := 0; i < reflect.TypeFor[Config]().NumField(); i++ {
		fields = append(fields, reflect.TypeFor[Config]().Field(i).Name)
	}
	if !reflect.DeepEqual(fields, []string{"Upstreams", "Snippets"}) {
		t.Fatalf("Config's fields are %v: teach journalEntry the new ones", fields)
	}
	rng := rand.New(rand.NewSource(3))
	ctx := context.Background()
	dir := t.TempDir()
	s := newFileStore(t, dir)
	fb := s.backend.(*FileBackend)
	fb.minFold = 2 << 10 // fold now and then in a short test
	appended, folded := 0, 0
	names := []string{"a", "b", "c", "d"}
	for step := 0; step < 300; step++ {
		name := names[rng.Intn(len(names))]
		var err error
		switch op := rng.Intn(10); {
		case op < 2:
			_, err = s.DeleteUpstream(ctx, name, "admin")
		case op < 3:
			_, _, err = s.StageSnippet(ctx, "s-"+name, SnippetDraft{Source: "function envoy_on_request(h) end", AppliesTo: &Placement{All: true}}, "admin")
		case op < 4:
			_, _, err = s.ActivateSnippet(ctx, "s-"+name, 0, "admin")
		case op < 5:
			_, err = s.DeleteSnippet(ctx, "s-"+name, "admin")
		default:
			u := Upstream{Name: name, Keepalive: rng.Intn(3), Servers: []Server{{Host: "10.0.0.1", Port: 80 + rng.Intn(5), Weight: rng.Intn(3)}}}
			if rng.Intn(3) == 0 {
				u.Servers[0].FailTimeout = Seconds(float64(rng.Intn(3) + 1))
			}
			_, err = s.PutUpstream(ctx, u, "admin")
		}
		if err != nil {
			continue // not found, no staged version: nothing written
		}
		if fb.journalSize == 0 {
			folded++
			// A fold writes the file as json.MarshalIndent writes the configuration.
			got, err := os.ReadFile(fb.path)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.MarshalIndent(fileDoc{Revision: s.State().Revision, Config: s.cfg}, "", "  ")
			if string(got) != string(want)+"\n" {
				t.Fatalf("step %d: after a fold the file is\n%s\nwant\n%s", step, got, want)
			}
		} else {
			appended++
		}
		cfg, rev := loadCopy(t, dir)
		if rev != s.State().Revision || mustJSON(cfg) != mustJSON(s.cfg) {
			t.Fatalf("step %d: the data dir loads as revision %d\n%s\nwant revision %d\n%s", step, rev, mustJSON(cfg), s.State().Revision, mustJSON(s.cfg))
		}
	}
	if appended < 50 || folded < 5 {
		t.Fatalf("%d writes appended, %d folded: the test does not exercise both", appended, folded)
	}
	// A restart reads the same configuration back.
	again := newFileStore(t, dir)
	if mustJSON(again.cfg) != mustJSON(s.cfg) || again.State().Revision != s.State().Revision {
		t.Fatalf("after a restart: %s, want %s", mustJSON(again.cfg), mustJSON(s.cfg))
	}
}

// A start after a crash: a last line cut off before its newline was never acknowledged and is left out;
// entries the file already has (a crash between writing the file and emptying the journal) are skipped;
// a damaged line elsewhere, or entries out of order, stop the start instead of guessing.
func TestJournalAfterACrash(t *testing.T) {
	file := `{"revision": 5, "upstreams": {"a": {"name": "a", "servers": [{"host": "10.0.0.1", "port": 80}]}}}`
	entry := func(rev int, name string, port int) string {
		if port == 0 {
			return `{"revision":` + itoa(rev) + `,"upstreams":{"` + name + `":null}}` + "\n"
		}
		return `{"revision":` + itoa(rev) + `,"upstreams":{"` + name + `":{"name":"` + name + `","servers":[{"host":"10.0.0.1","port":` + itoa(port) + `}]}}}` + "\n"
	}
	for _, tc := range []struct {
		name, journal string
		wantRev       uint64
		wantPorts     map[string]int // upstream → port; absent: deleted
		wantErr       string
	}{
		{name: "no journal", wantRev: 5, wantPorts: map[string]int{"a": 80}},
		{name: "writes after the file", journal: entry(6, "b", 81) + entry(8, "a", 0), wantRev: 8, wantPorts: map[string]int{"b": 81}},
		{name: "folded already", journal: entry(4, "a", 99) + entry(5, "z", 1) + entry(6, "b", 81), wantRev: 6, wantPorts: map[string]int{"a": 80, "b": 81}},
		{name: "torn last line", journal: entry(6, "b", 81) + strings.TrimSuffix(entry(7, "c", 82), "}}}\n"), wantRev: 6, wantPorts: map[string]int{"a": 80, "b": 81}},
		{name: "damaged line", journal: entry(6, "b", 81) + "{\"revision\":7,\n" + entry(8, "c", 82), wantErr: "line 2"},
		{name: "out of order", journal: entry(7, "b", 81) + entry(6, "c", 82), wantErr: "revision 6 after 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "dynup.json"), []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.journal != "" {
				if err := os.WriteFile(filepath.Join(dir, "dynup.journal"), []byte(tc.journal), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fb, _ := NewFileBackend(dir)
			s, err := NewStore(context.Background(), fb)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ports := map[string]int{}
			for name, u := range s.cfg.Upstreams {
				ports[name] = u.Servers[0].Port
			}
			if s.State().Revision != tc.wantRev || !reflect.DeepEqual(ports, tc.wantPorts) {
				t.Fatalf("revision %d, upstreams %v; want %d, %v", s.State().Revision, ports, tc.wantRev, tc.wantPorts)
			}
			// The next write (which folds first if the last line was cut off) is seen by a restart.
			if _, err := s.PutUpstream(context.Background(), up("n", 90), "admin"); err != nil {
				t.Fatal(err)
			}
			if cfg, rev := loadCopy(t, dir); rev != tc.wantRev+1 || cfg.Upstreams["n"].Servers[0].Port != 90 || len(cfg.Upstreams) != len(tc.wantPorts)+1 {
				t.Fatalf("after a write: revision %d, %s", rev, mustJSON(cfg))
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// An append that failed may have left part of a line: the next write folds the journal away instead of
// appending after it (which would leave a damaged line that stops the next start).
func TestWriteAfterAFailedAppendFolds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newFileStore(t, dir)
	fb := s.backend.(*FileBackend)
	if _, err := s.PutUpstream(ctx, up("a", 80), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := fb.journal.Write([]byte(`{"revision":2,"upstr`)); err != nil { // as a failed append may
		t.Fatal(err)
	}
	fb.broken = true
	if _, err := s.PutUpstream(ctx, up("b", 81), "admin"); err != nil {
		t.Fatal(err)
	}
	if cfg, rev := loadCopy(t, dir); rev != 2 || mustJSON(cfg) != mustJSON(s.cfg) {
		t.Fatalf("the data dir loads as revision %d %s, want 2 %s", rev, mustJSON(cfg), mustJSON(s.cfg))
	}
}
