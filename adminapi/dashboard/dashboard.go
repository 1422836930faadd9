// Package dashboard is dynup's web page: upstreams with their servers and health, nodes with their sync
// state, and recent changes with their propagation. The page reads the admin API's own JSON endpoints
// (/detail, /nodes, /changes, /sources) and polls them; everything it needs is embedded in the binary, and
// its Content-Security-Policy forbids loading anything from elsewhere.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// AssetPrefix is where the page's script and style sheet are served.
const AssetPrefix = "/ui/"

// contentSecurityPolicy allows only this server's own script, styles and JSON: a page that cannot fetch
// from elsewhere cannot depend on the internet by accident, and data shown from nodes (NACK details) can
// never run as script.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
	etag        string
}

var assets = load()

func load() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(static, "static", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("dashboard: embedded assets: " + err.Error()) // only a broken build gets here
	}
	return out
}

// Serves reports whether path is the page or one of its assets. They hold no configuration (the page reads
// the state through the JSON endpoints, with the viewer's credentials), so authentication can let them
// through: a browser cannot add a bearer token when it opens a page, and the page asks for one itself.
func Serves(path string) bool {
	_, ok := assets[assetName(path)]
	return ok
}

func assetName(p string) string {
	switch {
	case p == "/":
		return "index.html"
	case strings.HasPrefix(p, AssetPrefix) && p != AssetPrefix+"index.html":
		return strings.TrimPrefix(p, AssetPrefix)
	}
	return ""
}

// Handler serves the page at / and its assets under /ui/ (GET and HEAD). Anything else is a JSON 404, as
// elsewhere in the admin API.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := assetName(r.URL.Path)
		a, ok := assets[name]
		if !ok {
			notFound(w, r.URL.Path)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate every time (cheap with the ETag), so a dynup upgrade never leaves an old page running.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}

func notFound(w http.ResponseWriter, p string) {
	writeJSON(w, http.StatusNotFound, "no such endpoint: "+p)
}

func writeJSON(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "msg": msg})
}
