package adminapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
)

const denyDeleteAdmin = `function envoy_on_request(request_handle)
  local h = request_handle:headers()
  if h:get(":method") == "DELETE" then
    request_handle:respond({[":status"] = "403"}, "no\n")
  end
end
`

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return m
}

// Bad snippets get 400 with the line and the phase, and nothing is stored.
func TestLuaStageRejectsBadSnippets(t *testing.T) {
	a := newTestAPI(t)
	cases := []struct {
		name, path, body, field, phase string
		line                           float64
	}{
		{"syntax error", "/lua/s?all=true", "function envoy_on_request(h)\n  if then\nend", "source", "syntax", 2},
		{"ngx", "/lua/s?all=true", "function envoy_on_request(h)\n\n  ngx.exit(403)\nend", "source", "api", 3},
		{"no entry point", "/lua/s?all=true", "local x = 1", "source", "entry-point", 0},
		{"unknown method", "/lua/s?all=true", "function envoy_on_request(h)\n  h:headerz()\nend", "source", "api", 2},
		{"huge", "/lua/s?all=true", "-- " + strings.Repeat("x", 70<<10) + "\nfunction envoy_on_request(h) end", "source", "size", 0},
		{"no placement for a new snippet", "/lua/s", "function envoy_on_request(h) end", "applies_to", "", 0},
		{"bad domain", "/lua/s?domains=-bad-", "function envoy_on_request(h) end", "applies_to.domains[0]", "", 0},
		{"unknown JSON field", "/lua/s", `{"source":"function envoy_on_request(h) end","applies":{"all":true}}`, "body", "", 0},
		{"JSON without source", "/lua/s", `{"applies_to":{"all":true}}`, "source", "", 0},
		{"bad name", "/lua/a%20b?all=true", "function envoy_on_request(h) end", "name", "", 0},
	}
	a.h = New(Deps{Store: a.store, Publisher: nil, Nodes: nil, MaxBodyBytes: 256 << 10})
	for _, tc := range cases {
		code, body := a.do("POST", tc.path, tc.body)
		m := decode(t, body)
		if code != 400 || m["field"] != tc.field || (tc.phase != "" && (m["phase"] != tc.phase || m["line"] != tc.line)) {
			t.Errorf("%s: %d %s; want 400 field %s phase %q line %v", tc.name, code, body, tc.field, tc.phase, tc.line)
		}
	}
	if code, body := a.do("GET", "/lua", ""); code != 200 || !strings.Contains(body, `"snippets":[]`) {
		t.Fatalf("after rejected stages: %d %s", code, body)
	}
	if a.store.State().Revision != 0 {
		t.Fatal("a rejected stage changed the state")
	}
}

func TestLuaLifecycleAndDryRun(t *testing.T) {
	a := newTestAPI(t)
	if code, body := a.do("POST", "/upstream/admin", `{"servers":[{"host":"10.0.0.1","port":80}],"domains":["admin.upyun.com"]}`); code != 200 {
		t.Fatalf("upstream: %d %s", code, body)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, httptest.NewRequest("POST", "/lua/deny?domains=admin.upyun.com", strings.NewReader(denyDeleteAdmin)))
	if rec.Code != 200 || rec.Header().Get(ChangeHeader) == "" || rec.Header().Get(SnippetVersionHeader) != "1" ||
		rec.Header().Get(SnippetMD5Header) != registry.SourceMD5(denyDeleteAdmin) {
		t.Fatalf("stage: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	_, body := a.do("GET", "/lua/deny", "")
	if m := decode(t, body); m["snippet"].(map[string]any)["staged"] != 1.0 || m["snippet"].(map[string]any)["active"] != 0.0 {
		t.Fatalf("after stage: %s", body)
	}
	// The dry run tests the staged version before it is activated: the seed's example.
	code, body := a.do("POST", "/lua/deny/test", `{"method":"DELETE","path":"/users/7","headers":{"host":"admin.upyun.com"}}`)
	m := decode(t, body)
	res, _ := m["result"].(map[string]any)
	if code != 200 || res["action"] != "respond" || res["respond"].(map[string]any)["status"] != 403.0 || m["applies_to_host"] != true {
		t.Fatalf("dry run DELETE: %d %s", code, body)
	}
	code, body = a.do("POST", "/lua/deny/test", `{"method":"GET","headers":{"host":"www.upyun.com"}}`)
	if m := decode(t, body); code != 200 || m["result"].(map[string]any)["action"] != "continue" || m["applies_to_host"] != false {
		t.Fatalf("dry run GET elsewhere: %d %s", code, body)
	}
	if code, body := a.do("POST", "/lua/deny/test", `{"method":"GET","headers":{":path":"/x"}}`); code != 400 || decode(t, body)["field"] != "request" {
		t.Fatalf("bad sample: %d %s", code, body)
	}
	if code, body := a.do("PUT", "/lua/deny", ""); code != 200 {
		t.Fatalf("activate: %d %s", code, body)
	}
	if st := a.store.State(); len(st.Snippets) != 1 || st.Snippets[0].Version != 1 {
		t.Fatalf("active snippets %+v", st.Snippets)
	}
	if code, body := a.do("PUT", "/lua/deny", ""); code != 409 {
		t.Fatalf("activate with nothing staged: %d %s", code, body)
	}
	// v2 in JSON form with a new order; placement kept from v1.
	v2 := `{"source":` + jsonString(strings.Replace(denyDeleteAdmin, "403", "405", 1)) + `,"order":7}`
	if code, body := a.do("POST", "/lua/deny", v2); code != 200 {
		t.Fatalf("stage v2: %d %s", code, body)
	}
	if code, body := a.do("PUT", "/lua", ""); code != 200 {
		t.Fatalf("activate all: %d %s", code, body)
	}
	if st := a.store.State(); st.Snippets[0].Version != 2 || st.Snippets[0].Order != 7 || st.Snippets[0].AppliesTo.Domains[0] != "admin.upyun.com" {
		t.Fatalf("after v2: %+v", st.Snippets)
	}
	if code, body := a.do("PUT", "/lua/deny?version=1", ""); code != 200 {
		t.Fatalf("rollback: %d %s", code, body)
	}
	_, body = a.do("GET", "/lua/deny", "") // versions without their sources; the active source once
	m = decode(t, body)
	versions := m["versions"].([]any)
	if m["source"] != denyDeleteAdmin || len(versions) != 2 || versions[1].(map[string]any)["active"] != true ||
		m["snippet"].(map[string]any)["hosts"].([]any)[0] != "admin" || strings.Count(body, "envoy_on_request(request_handle)") != 1 {
		t.Fatalf("after rollback: %s", body)
	}
	if code, body := a.do("GET", "/lua/deny?version=2", ""); code != 200 || !strings.Contains(body, "405") {
		t.Fatalf("source of v2: %d %s", code, body)
	}
	if code, body := a.do("PUT", "/lua/deny?version=9", ""); code != 404 {
		t.Fatalf("activate v9: %d %s", code, body)
	}
	if code, body := a.do("DELETE", "/lua/deny", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := a.do("GET", "/lua/deny", ""); code != 404 {
		t.Fatalf("after delete: %d", code)
	}
	if code, _ := a.do("DELETE", "/lua/deny", ""); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A NACK is shown on a snippet when a change it is attributed to touched the snippet, and only while the
// node was sent nothing newer.
func TestRejectionsOfSnippet(t *testing.T) {
	nack := &nodes.Nack{Version: "v2", Detail: "bad lua", Changes: []registry.Change{
		{Revision: 4, Upstreams: []string{"web"}}, {Revision: 5, Snippets: []string{"deny"}},
	}}
	all := []nodes.Node{
		{ID: "envoy-1", Types: map[string]*nodes.TypeState{"rds": {SentVersion: "v2", LastNack: nack}}},
		{ID: "envoy-2", Types: map[string]*nodes.TypeState{"rds": {SentVersion: "v3", LastNack: nack}}}, // sent newer since
	}
	got := rejectionsOfSnippet(all, "deny")
	if len(got) != 1 || got[0].Node != "envoy-1" || len(got[0].Changes) != 1 || got[0].Changes[0] != 5 {
		t.Fatalf("rejections %+v", got)
	}
	if got := rejectionsOfSnippet(all, "web"); len(got) != 0 {
		t.Fatalf("an upstream's change was attributed to a snippet: %+v", got)
	}
}
