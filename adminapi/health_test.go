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
	"time"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/feedback"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/translate"
)

func newHealthAPI(t *testing.T, withTracker bool) (*testAPI, *feedback.Tracker) {
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
	d := Deps{Store: store, Publisher: publish.New(translate.DefaultOptions(), log, ro), Nodes: nodes.NewTracker(ro, log),
		Rollout: ro, Log: log, MaxBodyBytes: 64 << 10}
	var tr *feedback.Tracker
	if withTracker {
		tr = feedback.New(store, log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { tr.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		d.Health = HealthDeps{Tracker: tr}
	}
	return &testAPI{store: store, h: New(d)}, tr
}

// putAndWait stores an upstream and waits until the tracker knows its servers (it follows the store).
func putAndWait(t *testing.T, a *testAPI, tr *feedback.Tracker, name, body string, servers int) {
	t.Helper()
	if code, b := a.do("POST", "/upstream/"+name, body); code != 200 {
		t.Fatalf("POST /upstream/%s: %d %s", name, code, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, st := tr.Status()
		n := 0
		for k := range st {
			if k.Upstream == name {
				n++
			}
		}
		if n == servers {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker does not know the %d servers of %s", servers, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFeedbackRefusesBadInput(t *testing.T) {
	a, tr := newHealthAPI(t, true)
	putAndWait(t, a, tr, "web", `{"servers":[{"host":"10.0.0.1","port":80},{"host":"10.0.0.2","port":80}]}`, 2)
	before := a.store.State().Revision
	tests := []struct {
		body  string
		code  int
		field string
	}{
		{`not json`, 400, "body"},
		{`{"upstream":"web","host":"10.0.0.1","port":80,"failed":true,"extra":1}`, 400, "body"},
		{`{"host":"10.0.0.1","port":80,"failed":true}`, 400, "upstream"},
		{`{"upstream":"web","port":80,"failed":true}`, 400, "host"},
		{`{"upstream":"web","host":"example.com","port":80,"failed":true}`, 400, "host"},
		{`{"upstream":"web","host":"10.0.0.1","port":0,"failed":true}`, 400, "port"},
		{`{"upstream":"web","host":"10.0.0.1","port":80}`, 400, "failed"},
		{`{"upstream":"nope","host":"10.0.0.1","port":80,"failed":true}`, 404, "upstream"},
		{`{"upstream":"web","host":"10.0.0.9","port":80,"failed":true}`, 404, "host"},
		{`{"upstream":"web","host":"10.0.0.1","port":81,"failed":true}`, 404, "host"},
	}
	for _, tt := range tests {
		code, body := a.do("POST", "/feedback", tt.body)
		var e errorBody
		json.Unmarshal([]byte(body), &e)
		if code != tt.code || e.Status != tt.code || e.Field != tt.field || e.Msg == "" {
			t.Errorf("%s: %d %s, want %d naming %q", tt.body, code, body, tt.code, tt.field)
		}
	}
	if l, _ := tr.Status(); l.Reports != 0 || a.store.State().Revision != before {
		t.Fatalf("refused feedback changed something: %+v", l)
	}
	off, _ := newHealthAPI(t, false)
	if code, body := off.do("POST", "/feedback", `{"upstream":"web","host":"10.0.0.1","port":80,"failed":true}`); code != 503 {
		t.Fatalf("feedback turned off: %d %s", code, body)
	}
}

func TestStatusShowsEveryState(t *testing.T) {
	a, tr := newHealthAPI(t, true)
	putAndWait(t, a, tr, "web", `{"servers":[{"host":"10.0.0.1","port":80},{"host":"10.0.0.2","port":80},{"host":"10.0.0.3","port":80,"down":true}],
		"health_check":{"type":"tcp"},"passive":{"max_fails":2,"fail_timeout":60}}`, 3)
	putAndWait(t, a, tr, "solo", `{"servers":[{"host":"10.0.1.1","port":80,"max_fails":1}]}`, 1)

	for _, node := range []string{"n1", "n2"} {
		code, body := a.do("POST", "/feedback", `{"upstream":"web","host":"10.0.0.2","port":80,"failed":true,"node":"`+node+`"}`)
		if code != 200 {
			t.Fatalf("feedback: %d %s", code, body)
		}
	}
	a.do("POST", "/feedback", `{"upstream":"web","host":"10.0.0.1","port":80,"failed":false}`)
	a.do("POST", "/feedback", `{"upstream":"solo","host":"10.0.1.1","port":80,"failed":true}`)

	code, body := a.do("GET", "/status", "")
	if code != 200 {
		t.Fatalf("GET /status: %d %s", code, body)
	}
	var v statusView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Feedback.Enabled || v.Checker.Enabled || v.Feedback.Out != 2 || len(v.Upstream) != 2 {
		t.Fatalf("summary: %s", body)
	}
	solo, web := v.Upstream[0], v.Upstream[1]
	if web.ActiveCheck != "envoy" || web.Passive.MaxFails != 2 {
		t.Errorf("web: %+v", web)
	}
	want := []struct{ state, by string }{{"unchecked", "admin"}, {"ejected", "feedback"}, {"down", "admin"}}
	for i, w := range want {
		s := web.Servers[i]
		if s.State != w.state || s.DecidedBy != w.by {
			t.Errorf("web server %d: %s by %s, want %s by %s", i, s.State, s.DecidedBy, w.state, w.by)
		}
	}
	if s := web.Servers[0]; !s.Serving || s.Feedback == nil || s.Feedback.TotalSuccesses != 1 || !strings.Contains(s.Note, "Envoy") {
		t.Errorf("web server 0: %+v", s)
	}
	if s := web.Servers[1]; s.Serving || s.Feedback.Failures != 2 || s.Feedback.Reporters != 2 || s.Reason == "" || s.Since.IsZero() {
		t.Errorf("web server 1: %+v %+v", s, s.Feedback)
	}
	if s := solo.Servers[0]; s.State != "ejected" || !s.Serving || s.Note == "" {
		t.Errorf("the protected single server: %+v", s)
	}
	if code, body := a.do("GET", "/status?upstream=solo", ""); code != 200 || strings.Contains(body, `"web"`) {
		t.Errorf("?upstream=solo: %d %s", code, body)
	}
	if code, body := a.do("GET", "/status?upstream=nope", ""); code != 404 || !strings.Contains(body, `"field":"upstream"`) {
		t.Errorf("?upstream=nope: %d %s", code, body)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/status", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /status: %d", rec.Code)
	}
}
