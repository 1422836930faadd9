package adminapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/adminapi/dashboard"
)

// AuthConfig says who may use the admin API. The zero value lets everyone do everything, which is only
// safe on a loopback address; cmd/dynup refuses to bind anything else without a token.
type AuthConfig struct {
	// Tokens are the accepted bearer tokens. With none, no request needs one.
	Tokens []Token
	// OpenReads lets GET and HEAD through without a token. Lua endpoints still need one: a snippet's
	// source is code that runs in every Envoy, and reading it shows what an attacker would need to change.
	OpenReads bool
	// LoopbackHostOnly refuses requests whose Host header is not a loopback address or "localhost". It is
	// meant for running without a token: a web page can make a browser send requests to 127.0.0.1 with
	// its own host name (DNS rebinding), and this is what tells those apart.
	LoopbackHostOnly bool
	// Audit receives one line per mutation (and per refused request); nil logs nothing.
	Audit *slog.Logger
}

// Token is one accepted bearer token. ID names it in the audit log, so a log never holds the secret.
type Token struct {
	ID     string
	Secret string
}

// openPath reports paths that need no token, since their answers say nothing about the configuration:
// the liveness probe (probes carry no credentials), and the dashboard's page and assets, which must load
// to ask for the token that their data requests then carry.
func openPath(r *http.Request) bool {
	if isMutation(r.Method) {
		return false
	}
	p := r.URL.Path
	return p == "/healthz" || p == "/" || strings.HasPrefix(path.Clean(p)+"/", dashboard.AssetPrefix)
}

// Guard authenticates admin requests and writes the audit log. It belongs first in the chain (after
// recovery), so that no handler runs for a refused request.
//
// Rules, with at least one token configured: a mutation (any method but GET and HEAD) needs a valid
// token; anything under /lua needs one; other reads need one unless OpenReads (openPath never does). A
// wrong token is refused even on an open read, so a misconfigured client finds out at once. Without
// tokens everything is open, apart from the loopback Host check. Mutations from a browser page of another
// origin are always refused (cross-site request forgery: a form post to 127.0.0.1 needs no credentials).
func Guard(cfg AuthConfig) gin.HandlerFunc {
	digests := make([][sha256.Size]byte, len(cfg.Tokens))
	for i, tok := range cfg.Tokens {
		digests[i] = sha256.Sum256([]byte(tok.Secret))
	}
	return func(c *gin.Context) {
		who, status, field, msg := cfg.check(c.Request, digests)
		if status != 0 {
			if status == http.StatusUnauthorized {
				c.Header("WWW-Authenticate", `Bearer realm="dynup"`)
			}
			fail(c, status, field, msg)
		} else {
			c.Next()
		}
		cfg.log(c, who, field)
	}
}

// check decides one request: who made it (for the audit log), and if it is refused, the status, the
// field at fault and why.
func (cfg AuthConfig) check(r *http.Request, digests [][sha256.Size]byte) (who string, status int, field, msg string) {
	who = "anonymous"
	mutation := isMutation(r.Method)
	if cfg.LoopbackHostOnly && !loopbackHost(r.Host) {
		return who, http.StatusForbidden, "host", "the admin API without a token answers only to a loopback Host " +
			"(127.0.0.1, [::1], localhost); set an admin token to reach it by another name"
	}
	if mutation && crossOrigin(r) {
		return who, http.StatusForbidden, "origin", "a change sent by a web page of another origin is refused " +
			"(cross-site request forgery); send it with curl or a script"
	}
	if len(digests) == 0 || openPath(r) {
		return who, 0, "", ""
	}
	presented, hasToken := bearer(r.Header.Get("Authorization"))
	if !hasToken {
		if mutation || !cfg.OpenReads || luaPath(r.URL.Path) {
			return who, http.StatusUnauthorized, "authorization", "this request needs the header Authorization: Bearer <admin token>"
		}
		return who, 0, "", ""
	}
	id, ok := match(digests, presented)
	if !ok {
		return who, http.StatusUnauthorized, "authorization", "the bearer token is not valid"
	}
	return "token:" + cfg.Tokens[id].ID, 0, "", ""
}

func isMutation(method string) bool { return method != http.MethodGet && method != http.MethodHead }

// match compares the presented token with every configured one in constant time: the digests have equal
// lengths whatever the inputs, and the loop never stops early, so timing says nothing about which token
// or how much of it matched.
func match(digests [][sha256.Size]byte, presented string) (int, bool) {
	p := sha256.Sum256([]byte(presented))
	found := -1
	for i := range digests {
		found = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(digests[i][:], p[:]), i, found)
	}
	return found, found >= 0
}

// bearer extracts the token of an "Authorization: Bearer <token>" header (the scheme is case-insensitive).
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// luaPath reports whether p is /lua or below it, after the cleaning a router might do.
func luaPath(p string) bool {
	p = path.Clean("/" + p)
	return p == "/lua" || strings.HasPrefix(p, "/lua/")
}

// loopbackHost reports whether a Host header names this machine: a loopback IP or localhost, any port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// crossOrigin reports a request a browser sent on behalf of a page of another origin. Browsers send
// Sec-Fetch-Site and Origin with every cross-origin POST, PUT and DELETE; curl and scripts send neither.
func crossOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
}

// log writes the audit line of a mutation: who (the token's id, never the token), from where, what, the
// answer, and the change id the write made (empty when it made none). A refused read gets a warning.
func (cfg AuthConfig) log(c *gin.Context, who, refusedFor string) {
	if cfg.Audit == nil {
		return
	}
	r := c.Request
	if isMutation(r.Method) {
		cfg.Audit.Info("audit", "who", who, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
			"status", c.Writer.Status(), "change", c.Writer.Header().Get(ChangeHeader))
		return
	}
	if refusedFor != "" {
		cfg.Audit.Warn("admin request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
			"status", c.Writer.Status(), "reason", refusedFor)
	}
}
