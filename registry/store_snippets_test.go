package registry

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dynup/dynup/luafilters"
)

const (
	addHeader  = `function envoy_on_request(h) h:headers():add("x-a", "1") end`
	onResponse = `function envoy_on_response(h) h:headers():add("x-b", "2") end`
)

func draft(src string, p *Placement) SnippetDraft { return SnippetDraft{Source: src, AppliesTo: p} }

func TestStageValidatesAndStoresNothingOnError(t *testing.T) {
	s := newFileStore(t, t.TempDir())
	ctx := context.Background()
	before := s.State()
	_, _, err := s.StageSnippet(ctx, "bad", draft("function envoy_on_request(h)\n  ngx.exit(403)\nend", &Placement{All: true}), "admin")
	var verr *luafilters.ValidationError
	if !errors.As(err, &verr) || verr.Line != 2 {
		t.Fatalf("staging ngx.exit: %v, want a validation error on line 2", err)
	}
	_, _, err = s.StageSnippet(ctx, "nowhere", draft(addHeader, nil), "admin")
	var ferr *FieldError
	if !errors.As(err, &ferr) || ferr.Field != "applies_to" {
		t.Fatalf("a new snippet without a placement: %v, want a field error on applies_to", err)
	}
	if _, ok := s.Snippet("bad"); ok || s.State() != before {
		t.Fatal("a rejected snippet changed the store")
	}
}

func TestSnippetLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := newFileStore(t, dir)
	ctx := context.Background()
	st, v1, err := s.StageSnippet(ctx, "script.admin.upyun.com", draft(addHeader, nil), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.MD5 != SourceMD5(addHeader) || !slices.Equal(v1.AppliesTo.Domains, []string{"admin.upyun.com"}) {
		t.Fatalf("staged %+v", v1)
	}
	if len(st.Snippets) != 0 || !slices.Equal(st.Change.Snippets, []string{"script.admin.upyun.com"}) {
		t.Fatalf("staging made snippets active: %+v, change %+v", st.Snippets, st.Change)
	}
	hashStaged := st.Hash
	st, _, err = s.ActivateSnippet(ctx, "script.admin.upyun.com", 0, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Snippets) != 1 || st.Snippets[0].Version != 1 || st.Hash == hashStaged {
		t.Fatalf("after activation: %+v (hash %s, before %s)", st.Snippets, st.Hash, hashStaged)
	}
	if _, _, err := s.ActivateSnippet(ctx, "script.admin.upyun.com", 0, "admin"); !errors.As(err, new(*ConflictError)) {
		t.Fatalf("activating with nothing staged: %v, want a conflict", err)
	}
	order := 5
	if _, _, err := s.StageSnippet(ctx, "script.admin.upyun.com", SnippetDraft{Source: onResponse, Order: &order}, "admin"); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.Snippets[0].Version != 1 {
		t.Fatalf("staging v2 changed the active version: %+v", st.Snippets)
	}
	st, v2, err := s.ActivateSnippet(ctx, "script.admin.upyun.com", 0, "admin")
	if err != nil || v2.Version != 2 || st.Snippets[0].Order != 5 || !slices.Equal(st.Snippets[0].EntryPoints, []string{"envoy_on_response"}) {
		t.Fatalf("activate v2: %v %+v", err, st.Snippets)
	}
	// Rollback, then a restart keeps the versions and the active one.
	if _, _, err := s.ActivateSnippet(ctx, "script.admin.upyun.com", 1, "admin"); err != nil {
		t.Fatal(err)
	}
	before := s.State()
	after := newFileStore(t, dir).State()
	if after.Hash != before.Hash || len(after.Snippets) != 1 || after.Snippets[0].Version != 1 {
		t.Fatalf("after restart: %+v (hash %s, want %s)", after.Snippets, after.Hash, before.Hash)
	}
	if _, _, err := s.ActivateSnippet(ctx, "script.admin.upyun.com", 9, "admin"); !errors.As(err, new(*NotFoundError)) {
		t.Fatalf("activating a missing version: %v", err)
	}
	st, err = s.DeleteSnippet(ctx, "script.admin.upyun.com", "admin")
	if err != nil || len(st.Snippets) != 0 || !slices.Equal(st.Change.Snippets, []string{"script.admin.upyun.com"}) {
		t.Fatalf("delete: %v %+v", err, st)
	}
}

// The oldest versions go once there are too many, but never the active one.
func TestSnippetVersionsAreBounded(t *testing.T) {
	s := newFileStore(t, t.TempDir())
	ctx := context.Background()
	for i := 0; i < MaxSnippetVersions+5; i++ {
		src := addHeader + strings.Repeat(" ", i) // a distinct source each time
		if _, _, err := s.StageSnippet(ctx, "grow", draft(src, &Placement{All: true}), "admin"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, _, err := s.ActivateSnippet(ctx, "grow", 1, "admin"); err != nil {
				t.Fatal(err)
			}
		}
	}
	sn, _ := s.Snippet("grow")
	if len(sn.Versions) != MaxSnippetVersions || sn.Versions[0].Version != 1 || sn.Versions[1].Version != 7 {
		t.Fatalf("kept %d versions starting %d, %d", len(sn.Versions), sn.Versions[0].Version, sn.Versions[1].Version)
	}
}

// A data file whose active snippet no longer validates (edited by hand) still loads: that snippet is not
// served and a warning says why; the others run.
func TestInvalidStoredSnippetIsDroppedWithAWarning(t *testing.T) {
	dir := t.TempDir()
	doc := map[string]any{"revision": 3, "upstreams": map[string]any{}, "snippets": map[string]Snippet{
		"broken": {Active: 1, Versions: []SnippetVersion{{Version: 1, Source: "function envoy_on_request(h) ngx.exit(403) end",
			AppliesTo: Placement{All: true}, Validated: true}}},
		"fine": {Active: 1, Versions: []SnippetVersion{{Version: 1, Source: addHeader, AppliesTo: Placement{All: true}}}},
	}}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(dir, "dynup.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newFileStore(t, dir)
	st := s.State()
	if len(st.Snippets) != 1 || st.Snippets[0].Name != "fine" {
		t.Fatalf("served %+v, want only fine", st.Snippets)
	}
	var found bool
	for _, w := range st.Warnings {
		found = found || w.Object == "snippet/broken" && strings.Contains(w.Msg, "ngx")
	}
	if !found {
		t.Fatalf("no warning for the broken snippet: %+v", st.Warnings)
	}
	if sn, _ := s.Snippet("broken"); sn.Versions[0].Validated {
		t.Fatal("the stored claim validated=true was trusted")
	}
	// Validity is checked before "already active", so the answer says what is wrong with it.
	if _, _, err := s.ActivateSnippet(context.Background(), "broken", 1, "admin"); !errors.As(err, new(*FieldError)) {
		t.Fatalf("activating an invalid version: %v, want a field error", err)
	}
}

// Snippets sort by order, then name; placement matches upstream names and domains.
func TestActiveSnippetsOrderAndPlacement(t *testing.T) {
	ups := []Upstream{{Name: "web", Domains: []string{"www.example.com"}}}
	mk := func(order int, p Placement) Snippet {
		return Snippet{Active: 1, Versions: []SnippetVersion{{Version: 1, Source: addHeader, Validated: true, AppliesTo: p, Order: order}}}
	}
	got, warnings := activeSnippets(map[string]Snippet{
		"b": mk(1, Placement{Upstreams: []string{"web"}}),
		"a": mk(1, Placement{Domains: []string{"www.example.com"}}),
		"z": mk(0, Placement{All: true}),
		"x": mk(0, Placement{Domains: []string{"nowhere.example.com"}}),
	}, ups)
	var names []string
	for _, sn := range got {
		names = append(names, sn.Name)
	}
	if !slices.Equal(names, []string{"x", "z", "a", "b"}) {
		t.Fatalf("order %v", names)
	}
	if len(warnings) != 1 || warnings[0].Object != "snippet/x" {
		t.Fatalf("warnings %+v, want one for x (applies to no host)", warnings)
	}
}
