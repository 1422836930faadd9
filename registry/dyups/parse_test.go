package dyups

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
)

// seedBody is the example from ngx_http_dyups_module's README.
const seedBody = `server 127.0.0.1:8089;server 127.0.0.1:8088 weight=2 max_fails=3 fail_timeout=10s backup;`

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *registry.Duration { return &registry.Duration{Duration: d} }

func one(host string, port int) []registry.Server { return []registry.Server{{Host: host, Port: port}} }

// up builds an expected upstream named "api" holding the server 10.0.0.1:80 unless fn replaces it.
func up(fn func(u *registry.Upstream)) registry.Upstream {
	u := registry.Upstream{Name: "api", Servers: one("10.0.0.1", 80)}
	fn(&u)
	return u
}

// existing has every option set, to show which ones a dyups body keeps.
func existing() *registry.Upstream {
	return &registry.Upstream{
		Name:        "api",
		Domains:     []string{"api.example.com"},
		Servers:     one("10.9.9.9", 80),
		LB:          &registry.LoadBalancing{Policy: "maglev"},
		Keepalive:   32,
		Connection:  &registry.ConnectionLimits{MaxConnections: 7, MaxPendingRequests: 50},
		Timeouts:    &registry.Timeouts{Connect: dur(3 * time.Second)},
		Retry:       &registry.RetryPolicy{Tries: 2},
		HealthCheck: &registry.HealthCheck{Type: "grpc"},
		Passive:     &registry.PassiveHealth{MaxFails: ptr(1)},
		Protected:   ptr(false),
		Routes:      []registry.PathRoute{{Host: "gw.example.com", PathPrefix: "/api"}},
	}
}

func TestParse(t *testing.T) {
	const srv = "server 10.0.0.1:80;"
	httpCheck := func(h registry.HTTPCheck, headers ...registry.HeaderPair) *registry.HealthCheck {
		return &registry.HealthCheck{Type: "http", HTTP: &h, Headers: headers}
	}
	tests := []struct {
		name     string
		existing *registry.Upstream
		body     string
		want     registry.Upstream
	}{
		{"seed example", nil, seedBody, up(func(u *registry.Upstream) {
			u.Servers = []registry.Server{{Host: "127.0.0.1", Port: 8089},
				{Host: "127.0.0.1", Port: 8088, Weight: 2, MaxFails: ptr(3), FailTimeout: dur(10 * time.Second), Backup: true, Level: 1}}
		})},
		{"layout and comments", nil, "\n  server   10.0.0.1:80 ;\n# a comment; with a semicolon\n\tserver 10.0.0.2 ;;",
			up(func(u *registry.Upstream) { u.Servers = append(u.Servers, one("10.0.0.2", 80)...) })},
		{"no final semicolon", nil, "server 10.0.0.1:80", up(func(*registry.Upstream) {})},
		{"ipv6", nil, "server [::1]:8080; server [2001:db8::1];", up(func(u *registry.Upstream) {
			u.Servers = []registry.Server{{Host: "::1", Port: 8080}, {Host: "2001:db8::1", Port: 80}}
		})},
		{"fail_timeout forms", nil, "server 10.0.0.1 fail_timeout=500ms; server 10.0.0.2 fail_timeout=1m; server 10.0.0.3 fail_timeout=30;",
			up(func(u *registry.Upstream) {
				u.Servers = []registry.Server{{Host: "10.0.0.1", Port: 80, FailTimeout: dur(500 * time.Millisecond)},
					{Host: "10.0.0.2", Port: 80, FailTimeout: dur(time.Minute)}, {Host: "10.0.0.3", Port: 80, FailTimeout: dur(30 * time.Second)}}
			})},
		{"down", nil, "server 10.0.0.1:80 down;", up(func(u *registry.Upstream) { u.Servers[0].Down = true })},
		{"max_conns agree", nil, "server 10.0.0.1 max_conns=10; server 10.0.0.2 max_conns=10;", up(func(u *registry.Upstream) {
			u.Servers = append(u.Servers, one("10.0.0.2", 80)...)
			u.Connection = &registry.ConnectionLimits{MaxConnections: 10}
		})},
		{"max_conns smallest", nil, "server 10.0.0.1 max_conns=10; server 10.0.0.2 max_conns=4; server 10.0.0.3;", up(func(u *registry.Upstream) {
			u.Servers = append(u.Servers, registry.Server{Host: "10.0.0.2", Port: 80}, registry.Server{Host: "10.0.0.3", Port: 80})
			u.Connection = &registry.ConnectionLimits{MaxConnections: 4}
		})},
		{"max_conns zero is unlimited", nil, "server 10.0.0.1:80 max_conns=0;", up(func(*registry.Upstream) {})},
		{"ip_hash", nil, srv + "ip_hash;", up(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{SourceIP: true}) })},
		{"least_conn", nil, "least_conn;" + srv, up(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "least_request"} })},
		{"random", nil, srv + "random;", up(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "random"} })},
		{"random two", nil, srv + "random two;", up(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "least_request"} })},
		{"random two least_conn", nil, srv + "random two least_conn;", up(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "least_request"} })},
		{"hash remote_addr", nil, srv + "hash $remote_addr;", up(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{SourceIP: true}) })},
		{"hash uri", nil, srv + "hash $uri consistent;", up(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{Path: true}) })},
		{"hash request_uri", nil, srv + "hash $request_uri;", up(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{Path: true}) })},
		{"hash arg", nil, srv + "hash $arg_user_id consistent;", up(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{QueryParam: "user_id"}) })},
		{"hash http", nil, srv + "hash $http_X_User_Id;", up(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{Header: "x-user-id"}) })},
		{"hash cookie", nil, srv + "consistent_hash $cookie_sid;", up(func(u *registry.Upstream) {
			u.LB = ring(registry.HashKey{Cookie: &registry.CookieKey{Name: "sid"}})
		})},
		{"keepalive", nil, srv + "keepalive 16;", up(func(u *registry.Upstream) { u.Keepalive = 16 })},
		{"check in full", nil, srv + `check interval=3000 rise=2 fall=5 timeout=1000 type=http default_down=false;
			check_http_send "GET /status HTTP/1.0\r\nHost: api.local\r\nX-Probe: 1\r\n\r\n";
			check_http_expect_alive http_2xx http_3xx;`, up(func(u *registry.Upstream) {
			u.HealthCheck = httpCheck(registry.HTTPCheck{Method: "GET", Path: "/status", Host: "api.local",
				ExpectedStatuses: []registry.StatusRange{{Start: 200, End: 400}}}, registry.HeaderPair{Name: "X-Probe", Value: "1"})
			u.HealthCheck.Interval, u.HealthCheck.Timeout = dur(3*time.Second), dur(time.Second)
			u.HealthCheck.HealthyThreshold, u.HealthCheck.UnhealthyThreshold = 2, 5
		})},
		{"check tcp by default", nil, srv + "check interval=500 default_down=true;", up(func(u *registry.Upstream) {
			u.HealthCheck = &registry.HealthCheck{Type: "tcp", Interval: dur(500 * time.Millisecond)}
		})},
		{"check http default probe", nil, srv + "check type=http;", up(func(u *registry.Upstream) {
			u.HealthCheck = httpCheck(registry.HTTPCheck{Method: "GET", Path: "/"})
		})},
		{"check_http_send before check, single quotes", nil, srv + `check_http_send 'HEAD /h HTTP/1.0\r\n\r\n'; check type=http;`,
			up(func(u *registry.Upstream) { u.HealthCheck = httpCheck(registry.HTTPCheck{Method: "HEAD", Path: "/h"}) })},
		{"expect alive ranges", nil, srv + "check type=http; check_http_expect_alive http_4xx http_2xx http_2xx;", up(func(u *registry.Upstream) {
			u.HealthCheck = httpCheck(registry.HTTPCheck{Method: "GET", Path: "/",
				ExpectedStatuses: []registry.StatusRange{{Start: 200, End: 300}, {Start: 400, End: 500}}})
		})},
		{"replace keeps what dyups cannot say", existing(), srv, up(func(u *registry.Upstream) {
			e := existing()
			u.Domains, u.Routes, u.Retry, u.Timeouts, u.Passive, u.Protected = e.Domains, e.Routes, e.Retry, e.Timeouts, e.Passive, e.Protected
			u.Connection = &registry.ConnectionLimits{MaxPendingRequests: 50}
		})},
		{"replace sets max_conns", existing(), "server 10.0.0.1:80 max_conns=3;", up(func(u *registry.Upstream) {
			e := existing()
			u.Domains, u.Routes, u.Retry, u.Timeouts, u.Passive, u.Protected = e.Domains, e.Routes, e.Retry, e.Timeouts, e.Passive, e.Protected
			u.Connection = &registry.ConnectionLimits{MaxConnections: 3, MaxPendingRequests: 50}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("api", tt.body, tt.existing)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, tt.want); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
			got.Normalize()
			if err := got.Validate(); err != nil {
				t.Errorf("result does not validate: %v", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const srv = "server 10.0.0.1:80;"
	tests := []struct{ name, body, msg string }{
		{"position and text", srv + "server 127.0.0.1:0;", `directive 2 ("server 127.0.0.1:0"): port "0" is not 1-65535`},
		{"empty body", "", "no server directive"},
		{"no servers", "keepalive 8;", "no server directive"},
		{"unknown directive", srv + "zone backend 64k;", `directive 2 ("zone backend 64k"): unknown directive "zone"`},
		{"server without address", "server;", `directive 1 ("server"): needs an address`},
		{"host name", "server example.com:80;", `"example.com" is not an IP address`},
		{"unix socket", "server unix:/tmp/s;", `is not an IP address`},
		{"bad port", "server 10.0.0.1:http;", `port "http" is not 1-65535`},
		{"ipv6 without brackets", "server ::1:80;", "needs brackets"},
		{"ipv6 unclosed", "server [::1:80;", "lacks its closing ]"},
		{"ipv6 junk after bracket", "server [::1]80;", "is not [ipv6]:port"},
		{"weight zero", "server 10.0.0.1 weight=0;", `weight: "0" is not a number of at least 1`},
		{"weight word", "server 10.0.0.1 weight=x;", `weight: "x"`},
		{"max_fails negative", "server 10.0.0.1 max_fails=-1;", "max_fails:"},
		{"bad fail_timeout", "server 10.0.0.1 fail_timeout=soon;", "fail_timeout:"},
		{"bad max_conns", "server 10.0.0.1 max_conns=x;", "max_conns:"},
		{"unknown server parameter", "server 10.0.0.1 slow_start=10s;", `unknown server parameter "slow_start=10s"`},
		{"weight without value", "server 10.0.0.1 weight;", `unknown server parameter "weight"`},
		{"ip_hash with argument", srv + "ip_hash on;", "wrong arguments"},
		{"least_conn with argument", srv + "least_conn 2;", "wrong arguments"},
		{"random with a method but not two", srv + "random least_conn;", "wrong arguments"},
		{"random two with another method", srv + "random two least_time=header;", "wrong arguments"},
		{"two balancers", srv + "ip_hash; least_conn;", `directive 3 ("least_conn"): the balancing method is already set by directive 2`},
		{"hash without variable", srv + "hash;", "wrong arguments"},
		{"hash bad flag", srv + "hash $uri sticky;", "wrong arguments"},
		{"hash unknown variable", srv + "hash $host;", `cannot hash on "$host"`},
		{"hash composite", srv + "hash $host$uri consistent;", `cannot hash on "$host$uri"`},
		{"hash literal", srv + "consistent_hash uri;", `cannot hash on "uri"`},
		{"hash empty name", srv + "hash $http_;", `cannot hash on "$http_"`},
		{"keepalive missing", srv + "keepalive;", "needs one number"},
		{"keepalive zero", srv + "keepalive 0;", `"0" is not a number of at least 1`},
		{"keepalive twice", srv + "keepalive 1; keepalive 2;", "the keepalive is already set by directive 2"},
		{"check interval unit", srv + "check interval=3s;", `interval: "3s" is not a positive number of milliseconds`},
		{"check timeout zero", srv + "check timeout=0;", "timeout:"},
		{"check rise zero", srv + "check rise=0;", "rise:"},
		{"check fall word", srv + "check fall=many;", "fall:"},
		{"check type", srv + "check type=ssl_hello;", `type: "ssl_hello" is not supported (use http or tcp)`},
		{"check default_down", srv + "check default_down=maybe;", `default_down: "maybe" is not true or false`},
		{"check unknown", srv + "check port=8080;", "port: is unknown"},
		{"check twice", srv + "check; check;", "the health check is already set"},
		{"send without check", srv + `check_http_send "GET / HTTP/1.0\r\n\r\n";`, `directive 2 ("check_http_send GET / HTTP/1.0\r\n\r\n"): needs a "check ... type=http" directive`},
		{"send with tcp check", srv + `check type=tcp; check_http_send "GET / HTTP/1.0\r\n\r\n";`, "needs a \"check ... type=http\""},
		{"send without request", srv + "check type=http; check_http_send;", "needs one quoted request"},
		{"send bad request", srv + `check type=http; check_http_send "GET status";`, "must start with /"},
		{"send twice", srv + `check type=http; check_http_send "GET /"; check_http_send "GET /";`, "the http probe is already set"},
		{"expect without check", srv + "check_http_expect_alive http_2xx;", "needs a \"check ... type=http\""},
		{"expect nothing", srv + "check type=http; check_http_expect_alive;", "needs at least one"},
		{"expect bad class", srv + "check type=http; check_http_expect_alive http_6xx;", `"http_6xx" is not one of http_1xx ... http_5xx`},
		{"unterminated quote", srv + `check_http_send "GET /;`, "directive 2: unterminated quoted string"},
		{"block", "upstream x { server 10.0.0.1; }", "directive 1: blocks are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("api", tt.body, existing())
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *registry.FieldError, got %T %v", err, err)
			}
			if !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("got %q, want it to contain %q", fe.Msg, tt.msg)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
