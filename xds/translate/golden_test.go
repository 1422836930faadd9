package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/dynup/dynup/luafilters"
	"github.com/dynup/dynup/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current translation")

// goldenCase is one testdata/*.in.yaml file: the model, the node group and options.
type goldenCase struct {
	Group     Group               `json:"group"`
	Options   *Options            `json:"options,omitempty"`
	Upstreams []registry.Upstream `json:"upstreams"`
	// Snippets are active Lua snippets; md5 and entry_points are filled in (and the source validated).
	Snippets []registry.ActiveSnippet `json:"snippets,omitempty"`
}

// TestGolden translates every testdata/*.in.yaml and compares with the .golden.yaml beside it.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			st, g, opts := loadCase(t, in)
			got := renderGolden(t, st, g, opts)
			goldenPath := strings.TrimSuffix(in, ".in.yaml") + ".golden.yaml"
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run: go test ./xds/translate -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("translation of %s differs from %s (run with -update after checking):\n%s", in, goldenPath, lineDiff(string(want), string(got)))
			}
		})
	}
}

func loadCase(t *testing.T, path string) (*registry.State, Group, Options) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c goldenCase
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i := range c.Upstreams {
		c.Upstreams[i].Normalize()
		if err := c.Upstreams[i].Validate(); err != nil {
			t.Fatalf("%s: upstream %d: %v", path, i, err)
		}
	}
	for i := range c.Snippets {
		sn := &c.Snippets[i]
		entry, err := luafilters.EntryPoints(sn.Source, luafilters.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: snippet %s: %v", path, sn.Name, err)
		}
		sn.MD5, sn.EntryPoints = registry.SourceMD5(sn.Source), entry
	}
	opts := DefaultOptions()
	if c.Options != nil {
		opts = *c.Options
	}
	return &registry.State{Upstreams: c.Upstreams, Snippets: c.Snippets}, c.Group, opts
}

func renderGolden(t *testing.T, st *registry.State, g Group, opts Options) []byte {
	t.Helper()
	res, err := Translate(st, g, opts)
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	out := map[string]any{
		"clusters":  protoList(t, res.Clusters),
		"endpoints": protoList(t, res.Endpoints),
		"listeners": protoList(t, res.Listeners),
		"routes":    protoList(t, res.Routes),
	}
	if len(res.Warnings) > 0 {
		out["warnings"] = res.Warnings
	}
	j, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func protoList[M proto.Message](t *testing.T, msgs []M) []json.RawMessage {
	out := []json.RawMessage{}
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// lineDiff shows the first differing lines, enough to see what changed without a diff tool.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl && shown < 20 {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
