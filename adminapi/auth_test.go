package adminapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
)

const (
	opsToken    = "ops-0123456789abcdef0123456789abcdef"
	deployToken = "deploy-fedcba9876543210"
)

// guardedAPI is the admin API behind Guard, as New will wire it, with the audit log captured.
type guardedAPI struct {
	*testAPI
	audit *syncBuffer
}

func newGuardedAPI(t *testing.T, cfg AuthConfig) *guardedAPI {
	t.Helper()
	api := newTestAPI(t)
	audit := &syncBuffer{}
	cfg.Audit = slog.New(slog.NewJSONHandler(audit, nil))
	r := gin.New()
	r.Use(gin.Recovery(), Guard(cfg))
	inner := api.h
	r.NoRoute(gin.WrapH(inner)) // every path reaches the real API through the guard
	api.h = r
	return &guardedAPI{testAPI: api, audit: audit}
}

// send makes a request with the given Host (or example's default) and headers.
func (a *guardedAPI) send(method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.7:40000"
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

func bearerHeader(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines decodes the JSON log lines with the given message.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func wantRefused(t *testing.T, rec *httptest.ResponseRecorder, status int, field string) {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", rec.Code, rec.Body, err)
	}
	if rec.Code != status || body.Status != status || body.Field != field || body.Msg == "" {
		t.Fatalf("answer %d %s, want %d naming %q", rec.Code, rec.Body, status, field)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without a Bearer challenge: %v", rec.Header())
	}
}

func TestGuardWithTokenClosesMutationsAndReads(t *testing.T) {
	a := newGuardedAPI(t, AuthConfig{Tokens: []Token{{ID: "ops", Secret: opsToken}, {ID: "deploy", Secret: deployToken}}})

	wantRefused(t, a.send("POST", "/upstream/api", seedJSON), http.StatusUnauthorized, "authorization")
	wantRefused(t, a.send("POST", "/upstream/api", seedJSON, bearerHeader(opsToken+"x")...), http.StatusUnauthorized, "authorization")
	wantRefused(t, a.send("POST", "/upstream/api", seedJSON, "Authorization", "Basic "+opsToken), http.StatusUnauthorized, "authorization")
	wantRefused(t, a.send("DELETE", "/upstream/api", "", bearerHeader(opsToken[:10])...), http.StatusUnauthorized, "authorization")
	if st := a.store.State(); st.Revision != 0 || len(st.Upstreams) != 0 {
		t.Fatalf("a refused write changed the store: revision %d", st.Revision)
	}
	wantRefused(t, a.send("GET", "/list", ""), http.StatusUnauthorized, "authorization")
	wantRefused(t, a.send("GET", "/metrics", ""), http.StatusUnauthorized, "authorization")

	for _, tok := range []string{opsToken, deployToken} {
		if rec := a.send("POST", "/upstream/api", seedJSON, bearerHeader(tok)...); rec.Code != http.StatusOK {
			t.Fatalf("POST with token: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := a.send("GET", "/list", "", "Authorization", "bearer  "+opsToken); rec.Code != http.StatusOK {
		t.Fatalf("GET with token (lower-case scheme): %d %s", rec.Code, rec.Body)
	}
	if rec := a.send("GET", "/healthz", ""); rec.Code != http.StatusOK {
		t.Fatalf("/healthz must stay open for probes: %d", rec.Code)
	}
	// The dashboard's page and assets load without a token (they then ask for one); its data does not.
	for _, p := range []string{"/", "/ui/dashboard.js", "/ui/dashboard.css"} {
		if rec := a.send("GET", p, ""); rec.Code == http.StatusUnauthorized {
			t.Errorf("GET %s: 401; the page could never ask for the token", p)
		}
	}
	for _, p := range []string{"/ui/../detail", "/nodes"} {
		wantRefused(t, a.send("GET", p, ""), http.StatusUnauthorized, "authorization")
	}
	wantRefused(t, a.send("POST", "/healthz", ""), http.StatusUnauthorized, "authorization")
}

func TestGuardOpenReadsKeepLuaAndWritesClosed(t *testing.T) {
	a := newGuardedAPI(t, AuthConfig{Tokens: []Token{{ID: "ops", Secret: opsToken}}, OpenReads: true})
	for _, path := range []string{"/list", "/detail", "/nodes", "/metrics", "/upstream/none"} {
		if rec := a.send("GET", path, ""); rec.Code == http.StatusUnauthorized {
			t.Errorf("GET %s with open reads: 401", path)
		}
	}
	if rec := a.send("HEAD", "/list", ""); rec.Code == http.StatusUnauthorized {
		t.Error("HEAD with open reads: 401")
	}
	for _, path := range []string{"/lua", "/lua/deny", "/lua/deny/test", "/lua/", "/x/../lua/deny", "/%6cua/deny"} {
		wantRefused(t, a.send("GET", path, ""), http.StatusUnauthorized, "authorization")
	}
	if rec := a.send("GET", "/lua", "", bearerHeader(opsToken)...); rec.Code == http.StatusUnauthorized {
		t.Error("GET /lua with the token: 401")
	}
	wantRefused(t, a.send("POST", "/lua/deny", "function envoy_on_request(h) end"), http.StatusUnauthorized, "authorization")
	wantRefused(t, a.send("PUT", "/upstream/api", seedJSON), http.StatusUnauthorized, "authorization")
	// A wrong token is refused even where none is needed: the client is misconfigured and should know.
	wantRefused(t, a.send("GET", "/list", "", bearerHeader("not-the-token-at-all")...), http.StatusUnauthorized, "authorization")
}

func TestGuardWithoutTokenIsOpenOnLoopbackHostsOnly(t *testing.T) {
	a := newGuardedAPI(t, AuthConfig{LoopbackHostOnly: true})
	for _, host := range []string{"127.0.0.1:1995", "localhost:1995", "[::1]:1995", "127.0.0.2", "LOCALHOST"} {
		if rec := a.send("GET", "/list", "", "Host", host); rec.Code != http.StatusOK {
			t.Errorf("Host %s: %d %s", host, rec.Code, rec.Body)
		}
	}
	// DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
	for _, host := range []string{"evil.example:1995", "evil.example", "10.0.0.1:1995", "127.0.0.1.evil.example"} {
		wantRefused(t, a.send("GET", "/list", "", "Host", host), http.StatusForbidden, "host")
		wantRefused(t, a.send("POST", "/upstream/api", seedJSON, "Host", host), http.StatusForbidden, "host")
	}
	if rec := a.send("POST", "/upstream/api", seedJSON, "Host", "127.0.0.1:1995"); rec.Code != http.StatusOK {
		t.Fatalf("loopback write without a token: %d %s", rec.Code, rec.Body)
	}
}

func TestGuardRefusesCrossOriginWrites(t *testing.T) {
	a := newGuardedAPI(t, AuthConfig{LoopbackHostOnly: true})
	host := "127.0.0.1:1995"
	for _, h := range [][]string{
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Origin", "http://127.0.0.1:8080"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		wantRefused(t, a.send("POST", "/upstream/api", "server 127.0.0.1:80;", "Host", host, h[0], h[1]), http.StatusForbidden, "origin")
	}
	if a.store.State().Revision != 0 {
		t.Fatal("a cross-origin write changed the store")
	}
	// The admin API's own page (same origin) and plain curl may write; cross-origin reads are the
	// browser's business (no CORS headers are ever sent).
	for _, h := range [][]string{{"Origin", "http://" + host}, {"Sec-Fetch-Site", "same-origin"}, {"Sec-Fetch-Site", "none"}, {"X-None", ""}} {
		if rec := a.send("POST", "/upstream/api", seedJSON, "Host", host, h[0], h[1]); rec.Code != http.StatusOK {
			t.Errorf("%s %s: %d %s", h[0], h[1], rec.Code, rec.Body)
		}
	}
	if rec := a.send("GET", "/list", "", "Host", host, "Origin", "http://evil.example"); rec.Code != http.StatusOK {
		t.Errorf("cross-origin GET: %d", rec.Code)
	}
}

// Every mutation gets one audit line: who (the token's name, never the token), from where, what, the
// answer and the change id; refused mutations too.
func TestGuardAuditLog(t *testing.T) {
	a := newGuardedAPI(t, AuthConfig{Tokens: []Token{{ID: "ops", Secret: opsToken}}})
	a.send("POST", "/upstream/api", seedJSON, bearerHeader(opsToken)...)
	a.send("POST", "/upstream/api?format=dyups", "server 10.0.0.1:80;", bearerHeader(opsToken)...)
	a.send("DELETE", "/upstream/api", "")
	a.send("DELETE", "/upstream/api", "", bearerHeader(opsToken)...)
	a.send("POST", "/upstream/bad", `{"servers":[]}`, bearerHeader(opsToken)...)
	a.send("GET", "/list", "", bearerHeader(opsToken)...)

	lines := a.audit.lines(t, "audit")
	type want struct {
		who, method, path, change string
		status                    float64
	}
	wants := []want{
		{"token:ops", "POST", "/upstream/api", "1", 200},
		{"token:ops", "POST", "/upstream/api", "2", 200},
		{"anonymous", "DELETE", "/upstream/api", "", 401},
		{"token:ops", "DELETE", "/upstream/api", "3", 200},
		{"token:ops", "POST", "/upstream/bad", "", 400},
	}
	if len(lines) != len(wants) {
		t.Fatalf("%d audit lines, want %d (reads are not audited):\n%s", len(lines), len(wants), a.audit)
	}
	for i, w := range wants {
		l := lines[i]
		if l["who"] != w.who || l["method"] != w.method || l["path"] != w.path || l["change"] != w.change ||
			l["status"] != w.status || l["remote"] != "192.0.2.7:40000" {
			t.Errorf("audit line %d: %v, want %+v", i, l, w)
		}
	}
	if strings.Contains(a.audit.String(), opsToken) || strings.Contains(a.audit.String(), opsToken[:12]) {
		t.Fatalf("the token appears in the log:\n%s", a.audit)
	}
}

// A refused read is logged as a warning, without the token that was tried.
func TestGuardLogsRefusedReadsWithoutTheToken(t *testing.T) {
	a := newGuardedAPI(t, AuthConfig{Tokens: []Token{{ID: "ops", Secret: opsToken}}})
	tried := "guess-" + opsToken[6:]
	a.send("GET", "/detail", "", bearerHeader(tried)...)
	warns := a.audit.lines(t, "admin request refused")
	if len(warns) != 1 || warns[0]["path"] != "/detail" || warns[0]["status"] != float64(401) {
		t.Fatalf("warnings: %v", warns)
	}
	if strings.Contains(a.audit.String(), tried) {
		t.Fatal("the tried token appears in the log")
	}
}

// gin's recovery prints the request of a handler that panicked; the Authorization header must not be in
// what it prints.
func TestPanicLogHasNoToken(t *testing.T) {
	var out syncBuffer
	r := gin.New()
	r.Use(gin.RecoveryWithWriter(&out), Guard(AuthConfig{Tokens: []Token{{ID: "ops", Secret: opsToken}}, Audit: slog.New(slog.NewTextHandler(&out, nil))}))
	r.POST("/boom", func(*gin.Context) { panic("boom") })
	for _, mode := range []string{gin.ReleaseMode, gin.DebugMode} {
		gin.SetMode(mode)
		req := httptest.NewRequest("POST", "/boom", nil)
		req.Header.Set("Authorization", "Bearer "+opsToken)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Fatalf("%s: %d", mode, rec.Code)
		}
	}
	gin.SetMode(gin.ReleaseMode)
	if !strings.Contains(out.String(), "boom") {
		t.Fatalf("recovery logged nothing: %q", out.String())
	}
	if strings.Contains(out.String(), opsToken) {
		t.Fatalf("the token appears in the panic log:\n%s", out.String())
	}
}

func TestMatchFindsTheTokenWhateverItsLength(t *testing.T) {
	tokens := []Token{{"a", "short-token-0123456"}, {"b", strings.Repeat("x", 200)}, {"c", "short-token-0123457"}}
	digests := make([][sha256.Size]byte, len(tokens))
	for i, tok := range tokens {
		digests[i] = sha256.Sum256([]byte(tok.Secret))
	}
	for i, tok := range tokens {
		if got, ok := match(digests, tok.Secret); !ok || got != i {
			t.Errorf("token %d matched %d, %v", i, got, ok)
		}
	}
	for _, bad := range []string{"", "short-token-012345", "short-token-01234567", strings.Repeat("x", 199)} {
		if _, ok := match(digests, bad); ok {
			t.Errorf("%q matched", bad)
		}
	}
}

func BenchmarkGuard(b *testing.B) {
	tokens := make([]Token, 8)
	for i := range tokens {
		tokens[i] = Token{ID: string(rune('a' + i)), Secret: strings.Repeat(string(rune('a'+i)), 32)}
	}
	r := gin.New()
	r.Use(Guard(AuthConfig{Tokens: tokens, Audit: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	r.GET("/x", func(c *gin.Context) { c.Status(http.StatusOK) })
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer "+tokens[7].Secret)
	for b.Loop() {
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
}
