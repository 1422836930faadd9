// Package dyups reads and writes the plain-text upstream bodies of ngx_http_dyups_module
// ("server 127.0.0.1:8089 weight=2;server 127.0.0.1:8088 backup;"), the contents of an nginx upstream
// block, for dynup's dyups-compatible endpoint.
package dyups

import (
	"slices"

	"github.com/dynup/dynup/registry"
)

// parsed collects a body's directives; the upstream is assembled once all are read, because nginx lets
// check_http_send come before check.
type parsed struct {
	servers   []registry.Server
	maxConns  uint32 // smallest max_conns of any server, 0 for none
	lb        *registry.LoadBalancing
	keepalive int
	check     *registry.HealthCheck
	probe     *registry.HTTPCheck
	headers   []registry.HeaderPair
	expect    []registry.StatusRange
	seen      map[string]directive // directives that may appear once, by the setting they own
}

var handlers = map[string]func(p *parsed, d directive) error{
	"server":                  (*parsed).server,
	"ip_hash":                 (*parsed).balance,
	"least_conn":              (*parsed).balance,
	"random":                  (*parsed).balance,
	"hash":                    (*parsed).balance,
	"consistent_hash":         (*parsed).balance,
	"keepalive":               (*parsed).keepaliveDirective,
	"check":                   (*parsed).checkDirective,
	"check_http_send":         (*parsed).httpSend,
	"check_http_expect_alive": (*parsed).expectAlive,
}

// Parse reads a dyups body as the new definition of the upstream name. dyups replaces an upstream
// wholesale, so servers, balancing, keepalive and the health check come from the body alone (absent means
// reset). What the text cannot express (domains, routes, retry, timeouts, passive, protected and the
// connection limits other than max_connections) is kept from existing, which may be nil.
//
// max_conns is per server in nginx, but Envoy's connection limit is one value for the upstream: the
// result's connection.max_connections is the servers' max_conns when they all agree, else the smallest
// (so no server gets more than it asked for); servers without max_conns do not count.
//
// Settings the body leaves out take dynup's defaults, not the nginx check module's (its 30 s interval,
// for instance). Errors are *registry.FieldError naming the directive; the caller normalizes and validates.
func Parse(name, body string, existing *registry.Upstream) (registry.Upstream, error) {
	dirs, err := split(body)
	if err != nil {
		return registry.Upstream{}, err
	}
	p := parsed{seen: map[string]directive{}}
	for _, d := range dirs {
		handle, ok := handlers[d.args[0]]
		if !ok {
			return registry.Upstream{}, d.errorf("unknown directive %q", d.args[0])
		}
		if err := handle(&p, d); err != nil {
			return registry.Upstream{}, err
		}
	}
	return p.upstream(name, existing)
}

// once rejects a second directive for a setting, rather than letting the later one silently win.
func (p *parsed) once(setting string, d directive) error {
	if prev, ok := p.seen[setting]; ok {
		return d.errorf("the %s is already set by directive %d", setting, prev.pos)
	}
	p.seen[setting] = d
	return nil
}

func (p *parsed) upstream(name string, existing *registry.Upstream) (registry.Upstream, error) {
	if len(p.servers) == 0 {
		return registry.Upstream{}, &registry.FieldError{Msg: "no server directive: an upstream needs at least one server"}
	}
	hc, err := p.healthCheck()
	if err != nil {
		return registry.Upstream{}, err
	}
	u := registry.Upstream{Name: name}
	var conn registry.ConnectionLimits
	if existing != nil {
		// Slices are copied because the store normalizes its input in place; option structs are only read.
		u.Domains = slices.Clone(existing.Domains)
		u.Routes = slices.Clone(existing.Routes)
		u.Retry, u.Timeouts, u.Passive, u.Protected = existing.Retry, existing.Timeouts, existing.Passive, existing.Protected
		if existing.Connection != nil {
			conn = *existing.Connection
		}
	}
	conn.MaxConnections = p.maxConns
	if conn != (registry.ConnectionLimits{}) {
		u.Connection = &conn
	}
	u.Servers, u.LB, u.Keepalive, u.HealthCheck = p.servers, p.lb, p.keepalive, hc
	return u, nil
}

// healthCheck joins check with its http settings, which mean nothing without a "check type=http".
func (p *parsed) healthCheck() (*registry.HealthCheck, error) {
	for _, setting := range []string{"http probe", "expected statuses"} {
		d, ok := p.seen[setting]
		if ok && (p.check == nil || p.check.Type != "http") {
			return nil, d.errorf("needs a \"check ... type=http\" directive")
		}
	}
	if p.check == nil || p.check.Type != "http" {
		return p.check, nil
	}
	hc := *p.check
	// The check module's default request is "GET / HTTP/1.0"; Envoy's HTTP check needs a path.
	h := registry.HTTPCheck{Method: "GET", Path: "/"}
	if p.probe != nil {
		h = *p.probe
	}
	h.ExpectedStatuses = p.expect
	hc.HTTP, hc.Headers = &h, p.headers
	return &hc, nil
}
