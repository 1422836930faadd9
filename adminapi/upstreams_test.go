package adminapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/translate"
)

type testAPI struct {
	store *registry.Store
	h     http.Handler
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	backend, err := registry.NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.NewStore(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ro := rollout.New(store)
	pub := publish.New(translate.DefaultOptions(), log, ro)
	return &testAPI{store: store, h: New(Deps{Store: store, Publisher: pub, Nodes: nodes.NewTracker(ro, log), Rollout: ro,
		Log: log, MaxBodyBytes: 64 << 10})}
}

func (a *testAPI) do(method, path, body string) (int, string) {
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

const seedJSON = `{"servers":[{"host":"10.0.5.108","port":4001},{"host":"10.0.5.109","port":4001}],"keepalive":20}`

func TestSeedExamplesAreAccepted(t *testing.T) {
	a := newTestAPI(t)
	if code, body := a.do("POST", "/upstream/node-dev.upyun.com", seedJSON); code != 200 || !strings.Contains(body, `"status":200`) {
		t.Fatalf("Slardar JSON: %d %s", code, body)
	}
	if code, body := a.do("POST", "/upstream/dyhost", "server 127.0.0.1:8089;server 127.0.0.1:8088 weight=2 max_fails=3 fail_timeout=10s backup;"); code != 200 || body != "success" {
		t.Fatalf("dyups text: %d %q", code, body)
	}
	u, ok := a.store.State().Upstream("dyhost")
	if !ok || len(u.Servers) != 2 || u.Servers[1].Weight != 2 || !u.Servers[1].Backup || u.Servers[1].FailTimeout.Seconds() != 10 {
		t.Fatalf("dyhost stored as %+v", u)
	}
	// GET returns what POST accepts: the answer can be edited and sent back.
	_, got := a.do("GET", "/upstream/node-dev.upyun.com", "")
	if code, body := a.do("PUT", "/upstream/node-dev.upyun.com", got); code != 200 {
		t.Fatalf("PUT of GET's answer: %d %s", code, body)
	}
	if code, body := a.do("GET", "/list?format=dyups", ""); code != 200 || body != "dyhost\nnode-dev.upyun.com\n" {
		t.Fatalf("dyups list: %d %q", code, body)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	big := `{"servers":[` + strings.Repeat(`{"host":"10.0.0.1","port":1},`, 4000) + `{"host":"10.0.0.2","port":1}]}`
	cases := []struct {
		name, method, path, body string
		status                   int
		field, msg               string
	}{
		{"malformed JSON", "POST", "/upstream/u1", `{"servers":[`, 400, "", "decode body error"},
		{"JSON not an object", "POST", "/upstream/u1", `[1,2]`, 400, "", "body invalid"},
		{"unknown field", "POST", "/upstream/u1", `{"servers":[{"host":"10.0.0.1","port":80}],"colour":"blue"}`, 400, "", `"colour"`},
		{"no servers", "POST", "/upstream/u1", `{"servers":[]}`, 400, "servers", "empty"},
		{"server without port", "POST", "/upstream/u1", `{"servers":[{"host":"10.0.0.1"}]}`, 400, "servers[0]", "no server.host nor server.port found"},
		{"bad host", "POST", "/upstream/u1", `{"servers":[{"host":"not an ip","port":80}]}`, 400, "servers[0].host", "not an IP address"},
		{"bad port", "POST", "/upstream/u1", `{"servers":[{"host":"10.0.0.1","port":70000}]}`, 400, "servers[0].port", "not a port"},
		{"bad name", "POST", "/upstream/bad%20name", seedJSON, 400, "name", "not a valid upstream name"},
		{"bad balancing policy", "POST", "/upstream/u1", `{"servers":[{"host":"10.0.0.1","port":80}],"lb":{"policy":"fastest"}}`, 400, "lb.policy", "not one of"},
		{"malformed dyups text", "POST", "/upstream/u1", `server 10.0.0.1:80 weight=;`, 400, "", "weight"},
		{"unknown dyups directive", "POST", "/upstream/u1", `server 10.0.0.1:80; frobnicate;`, 400, "", "frobnicate"},
		{"dyups without servers", "POST", "/upstream/u1", `ip_hash;`, 400, "", "server"},
		{"oversized body", "POST", "/upstream/u1", big, 413, "body", "larger than the limit"},
		{"domain already served", "POST", "/upstream/u2", `{"servers":[{"host":"10.0.0.1","port":80}],"domains":["existing"]}`, 409, "", "already served by upstream"},
		{"delete unknown", "DELETE", "/upstream/nope", "", 404, "", "upstream nope not found"},
		{"get unknown", "GET", "/upstream/nope", "", 404, "", "not found"},
		{"wrong method", "PATCH", "/upstream/existing", "", 405, "", "not allowed"},
	}
	a := newTestAPI(t)
	if code, body := a.do("POST", "/upstream/existing", `{"servers":[{"host":"10.0.0.1","port":80}]}`); code != 200 {
		t.Fatalf("setup: %d %s", code, body)
	}
	base := a.store.State()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := a.do(tc.method, tc.path, tc.body)
			var e errorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("answer is not JSON: %q", body)
			}
			if code != tc.status || e.Status != tc.status {
				t.Errorf("status %d (body status %d), want %d: %s", code, e.Status, tc.status, body)
			}
			if tc.field != "" && e.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", e.Field, tc.field, body)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("msg %q does not mention %q", e.Msg, tc.msg)
			}
			if st := a.store.State(); st.Revision != base.Revision || st.Hash != base.Hash {
				t.Errorf("store changed: revision %d→%d, hash %s→%s", base.Revision, st.Revision, base.Hash, st.Hash)
			}
		})
	}
}
