package dashboard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w
}

func TestServesPageAndAssets(t *testing.T) {
	for path, ctype := range map[string]string{"/": "text/html", "/ui/dashboard.js": "text/javascript", "/ui/dashboard.css": "text/css"} {
		w := get(t, path)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %s", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len(), ctype)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		// A browser revalidates (no-cache) and gets 304 while the page is unchanged.
		if again := get(t, path, "If-None-Match", w.Header().Get("ETag")); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, again.Code)
		}
	}
}

func TestUnknownPathsAreJSON404(t *testing.T) {
	for _, path := range []string{"/ui/nope.js", "/ui/", "/ui/index.html", "/index.html", "/ui/../dashboard.go"} {
		w := get(t, path)
		var body struct {
			Status int
			Msg    string
		}
		if w.Code != http.StatusNotFound || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Status != 404 || body.Msg == "" {
			t.Errorf("GET %s: %d %s, want a JSON 404", path, w.Code, w.Body)
		}
	}
}

// The page must work without the internet: every asset it references is embedded and relative, and the
// script fetches only relative paths of the admin API.
func TestPageIsSelfContained(t *testing.T) {
	html := get(t, "/").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(refs) == 0 {
		t.Fatal("no references found in index.html")
	}
	api := map[string]bool{"detail": true, "nodes": true, "changes": true, "sources": true, "metrics": true}
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "data:"):
		case api[ref]:
		case strings.HasPrefix(ref, "ui/"):
			if w := get(t, "/"+ref); w.Code != http.StatusOK {
				t.Errorf("index.html references %s, which answers %d", ref, w.Code)
			}
		default:
			t.Errorf("index.html references %q: neither an embedded asset nor an admin API path", ref)
		}
	}
	for _, path := range []string{"/", "/ui/dashboard.js", "/ui/dashboard.css"} {
		if body := get(t, path).Body.String(); regexp.MustCompile(`(?i)https?://|url\(\s*['"]?//`).MatchString(body) {
			t.Errorf("%s contains an absolute URL", path)
		}
	}
	js := get(t, "/ui/dashboard.js").Body.String()
	fetches := regexp.MustCompile(`getJSON\('([^']*)'`).FindAllStringSubmatch(js, -1)
	if len(fetches) < 4 {
		t.Fatalf("found %d getJSON calls in dashboard.js, want one per endpoint", len(fetches))
	}
	for _, m := range fetches {
		if name, _, _ := strings.Cut(m[1], "?"); !api[name] {
			t.Errorf("dashboard.js fetches %q, not an admin API path", m[1])
		}
	}
}

func TestServes(t *testing.T) {
	for path, want := range map[string]bool{"/": true, "/ui/dashboard.js": true, "/ui/dashboard.css": true,
		"/ui/index.html": false, "/ui/": false, "/detail": false, "/nodes": false, "/ui/../detail": false} {
		if got := Serves(path); got != want {
			t.Errorf("Serves(%q) = %v, want %v", path, got, want)
		}
	}
}
