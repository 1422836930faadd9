package adminapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/registry"
)

// A body declared over the cap is refused before a byte is read; one that only turns out larger (no
// Content-Length) is cut off at the cap and refused by the handler that reads it; nothing changes.
func TestLimitCapsEveryBody(t *testing.T) {
	api := newTestAPI(t) // its handlers cap bodies at 64 KiB; the global cap here is lower
	r := gin.New()
	r.Use(Limit(Limits{MaxBodyBytes: 1024}))
	r.NoRoute(gin.WrapH(api.h))
	big := `{"servers":[` + strings.Repeat(`{"host":"10.0.0.1","port":80},`, 100) + `{"host":"10.0.0.2","port":80}]}`

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("POST", "/upstream/api", strings.NewReader(big)))
	wantRefused(t, rec, http.StatusRequestEntityTooLarge, "body")

	req := httptest.NewRequest("POST", "/upstream/api", io.MultiReader(strings.NewReader(big))) // length unknown
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	wantRefused(t, rec, http.StatusRequestEntityTooLarge, "body")
	if api.store.State().Revision != 0 {
		t.Fatal("an oversized body changed the store")
	}

	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("POST", "/upstream/api", strings.NewReader(seedJSON)))
	if rec.Code != http.StatusOK {
		t.Fatalf("a body under the cap: %d %s", rec.Code, rec.Body)
	}
}

func TestBodyLimitCapsOneGroup(t *testing.T) {
	r := gin.New()
	r.Use(Limit(Limits{MaxBodyBytes: 1 << 20}))
	lua := r.Group("/lua", BodyLimit(16))
	lua.POST("/:name", func(c *gin.Context) {
		if _, err := io.ReadAll(c.Request.Body); err != nil {
			failErr(c, err)
			return
		}
		c.Status(http.StatusOK)
	})
	for _, body := range []string{strings.Repeat("x", 16), strings.Repeat("x", 17)} {
		for _, known := range []bool{true, false} {
			req := httptest.NewRequest("POST", "/lua/s", strings.NewReader(body))
			if !known {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if want := map[bool]int{true: 200, false: 413}[len(body) <= 16]; rec.Code != want {
				t.Errorf("%d bytes (length known: %v): %d, want %d", len(body), known, rec.Code, want)
			}
		}
	}
}

// Mutations whose bodies are being read hold a slot; one that finds none within the wait gets 503 with
// Retry-After. A write that has read its body (and now waits for its rollout) holds no slot.
func TestLimitBoundsConcurrentWrites(t *testing.T) {
	r := gin.New()
	r.Use(Limit(Limits{MaxBodyBytes: 1 << 20, MaxConcurrentWrites: 2, WriteQueueWait: 200 * time.Millisecond}))
	started := make(chan struct{}, 8) // a handler runs: it holds a slot
	read := make(chan struct{}, 8)    // a handler has read its body
	hold := make(chan struct{})
	r.POST("/w", func(c *gin.Context) {
		started <- struct{}{}
		io.ReadAll(c.Request.Body)
		read <- struct{}{}
		if c.Query("hold") != "" {
			<-hold // like ?wait=: the body is read, the answer is not written yet
		}
		c.Status(http.StatusOK)
	})
	r.GET("/r", func(c *gin.Context) { c.Status(http.StatusOK) })
	srv := httptest.NewServer(r)
	defer srv.Close()

	results := make(chan int, 8)
	post := func(path string, body io.Reader) {
		go func() {
			resp, err := http.Post(srv.URL+path, "text/plain", body)
			if err != nil {
				results <- -1
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	postNow := func(path string) int {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		return resp.StatusCode
	}

	// Two uploads that do not finish take both slots.
	var writers []*io.PipeWriter
	for range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		post("/w", pr)
	}
	<-started
	<-started
	if code := postNow("/w"); code != http.StatusServiceUnavailable {
		t.Fatalf("a third upload while two are read: %d, want 503", code)
	}
	if resp, err := http.Get(srv.URL + "/r"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reads need no slot: %v %v", resp, err)
	}
	for _, pw := range writers {
		pw.Close()
	}
	for range 2 {
		if code := <-results; code != http.StatusOK {
			t.Fatalf("an upload answered %d", code)
		}
	}

	// Two writes that have read their bodies and wait: the slots are free for a third.
	for range 2 {
		<-read
	}
	post("/w?hold=1", strings.NewReader("a"))
	post("/w?hold=1", strings.NewReader("b"))
	for range 2 {
		<-read
	}
	if code := postNow("/w"); code != http.StatusOK {
		t.Fatalf("two writes waiting after reading their bodies still hold the slots: %d", code)
	}
	close(hold)
	for range 2 {
		if code := <-results; code != http.StatusOK {
			t.Fatalf("a held write answered %d", code)
		}
	}
}

// The admin server's write timeout is short, against slow readers; a write with ?wait= may answer later.
func TestWaitingWriteOutlivesTheWriteTimeout(t *testing.T) {
	r := gin.New()
	r.Use(Limit(Limits{}))
	r.POST("/w", func(c *gin.Context) {
		time.Sleep(300 * time.Millisecond) // a rollout wait
		c.String(http.StatusOK, "done")
	})
	srv := httptest.NewUnstartedServer(r)
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	for _, tc := range []struct {
		path string
		ok   bool
	}{{"/w?wait=5s", true}, {"/w", false}} {
		resp, err := http.Post(srv.URL+tc.path, "text/plain", strings.NewReader("x"))
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if got := err == nil && string(body) == "done"; got != tc.ok {
			t.Errorf("POST %s past the write timeout: answered %v (%v), want %v", tc.path, got, err, tc.ok)
		}
	}
}

// The registry's limits, as the admin API reports them: a FieldError naming the list or string.
func TestRegistryLimitsNameTheField(t *testing.T) {
	base := func() registry.Upstream {
		return registry.Upstream{Name: "api", Servers: []registry.Server{{Host: "10.0.0.1", Port: 80}}}
	}
	long := strings.Repeat("a", registry.MaxFieldBytes+1)
	cases := []struct {
		field  string
		modify func(*registry.Upstream)
	}{
		{"domains", func(u *registry.Upstream) {
			for i := range registry.MaxDomains + 1 {
				u.Domains = append(u.Domains, fmt.Sprintf("h%d.example.com", i))
			}
		}},
		{"routes", func(u *registry.Upstream) {
			u.Routes = make([]registry.PathRoute, registry.MaxRoutes+1)
		}},
		{"lb.hash_keys", func(u *registry.Upstream) {
			u.LB = &registry.LoadBalancing{Policy: "ring_hash", HashKeys: make([]registry.HashKey, registry.MaxHashKeys+1)}
		}},
		{"retry.on", func(u *registry.Upstream) {
			u.Retry = &registry.RetryPolicy{On: make([]string, registry.MaxRetryConditions+1)}
		}},
		{"health_check.headers", func(u *registry.Upstream) {
			u.HealthCheck = &registry.HealthCheck{Headers: make([]registry.HeaderPair, registry.MaxCheckHeaders+1)}
		}},
		{"health_check.http.bad_statuses", func(u *registry.Upstream) {
			u.HealthCheck = &registry.HealthCheck{HTTP: &registry.HTTPCheck{BadStatuses: make([]int, registry.MaxStatusEntries+1)}}
		}},
		{"servers[0].zone", func(u *registry.Upstream) { u.Servers[0].Zone = long }},
		{"health_check.http.path", func(u *registry.Upstream) {
			u.HealthCheck = &registry.HealthCheck{HTTP: &registry.HTTPCheck{Path: long}}
		}},
		{"health_check.headers[0].value", func(u *registry.Upstream) {
			u.HealthCheck = &registry.HealthCheck{Headers: []registry.HeaderPair{{Name: "a", Value: long}}}
		}},
		{"lb.hash_keys[0].cookie.path", func(u *registry.Upstream) {
			u.LB = &registry.LoadBalancing{HashKeys: []registry.HashKey{{Cookie: &registry.CookieKey{Name: "s", Path: long}}}}
		}},
		{"routes[0].path_prefix", func(u *registry.Upstream) { u.Routes = []registry.PathRoute{{Host: "a", PathPrefix: "/" + long}} }},
	}
	for _, tc := range cases {
		u := base()
		tc.modify(&u)
		var fe *registry.FieldError
		if err := u.CheckLimits(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s over its limit: %v", tc.field, err)
		}
	}
	u := base()
	u.Domains = make([]string, registry.MaxDomains)
	u.Servers[0].Zone = long[1:]
	if err := u.CheckLimits(); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func TestConfigLimits(t *testing.T) {
	cfg := registry.Config{Upstreams: map[string]registry.Upstream{}}
	servers := make([]registry.Server, registry.MaxConfiguredServers/registry.MaxUpstreams)
	for i := range registry.MaxUpstreams {
		name := fmt.Sprintf("u%d", i)
		cfg.Upstreams[name] = registry.Upstream{Name: name, Servers: servers}
	}
	var fe *registry.FieldError
	if err := registry.CheckConfigLimits(cfg, &registry.Upstream{Name: "one-more"}); !errors.As(err, &fe) || fe.Field != "name" {
		t.Errorf("upstream %d: %v", registry.MaxUpstreams+1, err)
	}
	if err := registry.CheckConfigLimits(cfg, &registry.Upstream{Name: "u7", Servers: servers[:1]}); err != nil {
		t.Errorf("replacing an upstream at the limit: %v", err)
	}
	if err := registry.CheckConfigLimits(cfg, &registry.Upstream{Name: "u7", Servers: append(servers, servers[0])}); !errors.As(err, &fe) || fe.Field != "servers" {
		t.Errorf("one server over the total: %v", err)
	}
}
