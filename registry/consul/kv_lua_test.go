package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/test/consulagent"
)

const denyDelete = `function envoy_on_request(h)
  if h:headers():get(":method") == "DELETE" then
    h:respond({[":status"] = "403"}, "no")
  end
end
`

// Snippets staged and activated through one store land in KV as JSON, check-and-set like upstreams; a
// second store on the same Consul loads them, and a stale writer gets a conflict.
func TestKVSnippetsWriteThroughAndConflict(t *testing.T) {
	agent := consulagent.Start(t)
	client := agent.Client(t)
	ctx := context.Background()
	s1, err := registry.NewStore(ctx, NewKV(client, "dynup/", Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s1.StageSnippet(ctx, "deny", registry.SnippetDraft{Source: denyDelete, AppliesTo: &registry.Placement{Domains: []string{"admin.upyun.com"}}}, "admin"); err != nil {
		t.Fatal(err)
	}
	s2, err := registry.NewStore(ctx, NewKV(client, "dynup/", Options{})) // reads the staged snippet
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s1.ActivateSnippet(ctx, "deny", 0, "admin"); err != nil {
		t.Fatal(err)
	}
	pair, _, err := client.KV().Get("dynup/lua/deny", nil)
	if err != nil || pair == nil {
		t.Fatalf("key: %v %v", pair, err)
	}
	var stored kvSnippet
	if err := json.Unmarshal(pair.Value, &stored); err != nil || stored.Active != 1 || stored.Versions[0].Source != denyDelete {
		t.Fatalf("stored %s (%v)", pair.Value, err)
	}
	if strings.Contains(string(pair.Value), "validated") {
		t.Fatalf("derived fields were stored: %s", pair.Value)
	}
	_, _, err = s2.ActivateSnippet(ctx, "deny", 0, "admin") // based on what it read before s1's activation
	if !errors.As(err, new(*registry.ConflictError)) {
		t.Fatalf("stale activation: %v, want a conflict", err)
	}
	s3, err := registry.NewStore(ctx, NewKV(client, "dynup/", Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if st := s3.State(); len(st.Snippets) != 1 || st.Snippets[0].Name != "deny" || st.Snippets[0].Version != 1 {
		t.Fatalf("a fresh store serves %+v", st.Snippets)
	}
	if _, err := s3.DeleteSnippet(ctx, "deny", "admin"); err != nil {
		t.Fatal(err)
	}
	if pair, _, _ := client.KV().Get("dynup/lua/deny", nil); pair != nil {
		t.Fatal("the key survived the delete")
	}
}

// Hand edits: Slardar's raw per-host script is served; raw code under another name, undecodable JSON and
// a snippet whose Lua does not validate are dropped with warnings; the watch brings changes in live.
func TestKVSnippetHandEdits(t *testing.T) {
	agent := consulagent.Start(t)
	client := agent.Client(t)
	put := func(key, value string) {
		t.Helper()
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	put("dynup/lua/script.admin.upyun.com", denyDelete)
	put("dynup/lua/version", "7")
	put("dynup/lua/module", "local M = {} return M")
	put("dynup/lua/typo", `{"active":1,"versoins":[]}`)
	put("dynup/lua/ngx", `{"active":1,"versions":[{"version":1,"source":"function envoy_on_request(h) ngx.exit(403) end","applies_to":{"all":true}}]}`)
	kv := NewKV(client, "dynup/", Options{})
	s, err := registry.NewStore(context.Background(), kv)
	if err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if len(st.Snippets) != 1 || st.Snippets[0].Name != "script.admin.upyun.com" || st.Snippets[0].AppliesTo.Domains[0] != "admin.upyun.com" {
		t.Fatalf("served %+v", st.Snippets)
	}
	var objects []string
	for _, w := range kv.Warnings() {
		objects = append(objects, w.Object)
	}
	if want := "[consul-kv/dynup/lua/module consul-kv/dynup/lua/typo]"; fmt.Sprint(objects) != want {
		t.Fatalf("KV warnings %v, want %s", objects, want)
	}
	if !hasWarning(st.Warnings, "snippet/ngx", "ngx") {
		t.Fatalf("no state warning for the snippet that does not validate: %+v", st.Warnings)
	}

	states, stop := s.Subscribe()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go kv.Run(ctx, s)
	put("dynup/lua/ngx", `{"active":1,"versions":[{"version":1,"source":"function envoy_on_request(h) h:logInfo('ok') end","applies_to":{"all":true}}]}`)
	timeout := time.After(20 * time.Second)
	for len(st.Snippets) != 2 {
		select {
		case st = <-states:
		case <-timeout:
			t.Fatalf("the fixed snippet never arrived: %+v %+v", st.Snippets, st.Warnings)
		}
	}
	if !strings.Contains(strings.Join(st.Change.Snippets, ","), "ngx") || st.Change.Source != KVSource {
		t.Fatalf("change %+v does not name the snippet", st.Change)
	}
}

func hasWarning(ws []registry.Warning, object, text string) bool {
	for _, w := range ws {
		if w.Object == object && strings.Contains(w.Msg, text) {
			return true
		}
	}
	return false
}
