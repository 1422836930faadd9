package slardar

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
)

func ptr[T any](v T) *T { return &v }

func secs(n float64) *registry.Duration { return registry.Seconds(n) }

// seedBody is the example from Slardar's README.
const seedBody = `{"servers":[{"host":"10.0.5.108","port":4001},{"host":"10.0.5.109","port":4001}],"keepalive":20}`

func seedServers() []registry.Server {
	return []registry.Server{{Host: "10.0.5.108", Port: 4001}, {Host: "10.0.5.109", Port: 4001}}
}

// rich is an existing upstream with every option set, to show which keys keep what.
func rich() *registry.Upstream {
	return &registry.Upstream{
		Name:       "api",
		Domains:    []string{"api.example.com"},
		Servers:    []registry.Server{{Host: "10.0.0.1", Port: 80}},
		LB:         &registry.LoadBalancing{Policy: "least_request", ChoiceCount: 3},
		Keepalive:  10,
		Connection: &registry.ConnectionLimits{MaxConnections: 100},
		Timeouts:   &registry.Timeouts{Connect: secs(3)},
		Retry:      &registry.RetryPolicy{Tries: 2, On: []string{"5xx"}},
		HealthCheck: &registry.HealthCheck{Type: "http", Interval: secs(5), Timeout: secs(1),
			HTTP: &registry.HTTPCheck{Path: "/status", Method: "GET"}},
		Passive:   &registry.PassiveHealth{MaxFails: ptr(3)},
		Protected: ptr(true),
		Routes:    []registry.PathRoute{{Host: "gw.example.com", PathPrefix: "/api"}},
	}
}

// with returns rich() changed by fn, for expectations that differ from it in one field.
func with(fn func(u *registry.Upstream)) registry.Upstream {
	u := rich()
	fn(u)
	return *u
}

func fresh(fn func(u *registry.Upstream)) registry.Upstream {
	u := registry.Upstream{Name: "api", Servers: seedServers()}
	fn(&u)
	return u
}

func ring(keys ...registry.HashKey) *registry.LoadBalancing {
	return &registry.LoadBalancing{Policy: "ring_hash", HashKeys: keys}
}

func TestDecode(t *testing.T) {
	servers := `"servers":[{"host":"10.0.5.108","port":4001},{"host":"10.0.5.109","port":4001}]`
	tests := []struct {
		name     string
		existing *registry.Upstream
		body     string
		want     registry.Upstream
	}{
		{"seed example", nil, seedBody, fresh(func(u *registry.Upstream) { u.Keepalive = 20 })},
		{"server fields", nil,
			`{"servers":[{"host":"10.0.5.108","port":4001,"weight":2,"max_fails":3,"fail_timeout":30,"zone":"z1","down":true}]}`,
			registry.Upstream{Name: "api", Servers: []registry.Server{{Host: "10.0.5.108", Port: 4001, Weight: 2,
				MaxFails: ptr(3), FailTimeout: secs(30), Zone: "z1", Down: true}}}},
		{"cluster levels", nil,
			`{"cluster":[{"servers":[{"host":"10.0.0.1","port":80}]},{"servers":[{"host":"10.0.0.2","port":80},{"host":"10.0.0.3","port":80,"level":1}]}]}`,
			registry.Upstream{Name: "api", Servers: []registry.Server{{Host: "10.0.0.1", Port: 80},
				{Host: "10.0.0.2", Port: 80, Level: 1, Backup: true}, {Host: "10.0.0.3", Port: 80, Level: 1, Backup: true}}}},
		{"servers keep options", rich(), `{` + servers + `}`, with(func(u *registry.Upstream) { u.Servers = seedServers() })},
		{"cluster keeps options", rich(), `{"cluster":[{` + servers + `}]}`, with(func(u *registry.Upstream) { u.Servers = seedServers() })},
		{"options keep servers", rich(), `{"keepalive":5}`, with(func(u *registry.Upstream) { u.Keepalive = 5 })},
		{"null resets", rich(), `{"keepalive":null,"lb":null,"protected":null,"domains":null,"routes":null}`,
			with(func(u *registry.Upstream) {
				u.Keepalive, u.LB, u.Protected, u.Domains, u.Routes = 0, nil, nil, nil, nil
			})},
		{"null servers", rich(), `{"servers":null}`, with(func(u *registry.Upstream) { u.Servers = nil })},
		{"name and source accepted", nil, `{"name":"api","servers":[{"host":"10.0.5.108","port":4001,"source":"consul"},{"host":"10.0.5.109","port":4001}]}`,
			fresh(func(*registry.Upstream) {})},
		{"name null", nil, `{"name":null,` + servers + `}`, fresh(func(*registry.Upstream) {})},
		{"dynup keys", nil, `{` + servers + `,"domains":["a.example.com"],"lb":{"policy":"maglev"},"keepalive":8,
			"connection":{"max_connections":9},"timeouts":{"connect":"2s","request":30},"retry":{"tries":3},
			"health_check":{"type":"grpc","interval":"10s"},"passive":{"max_fails":0},"protected":false,
			"routes":[{"host":"gw.example.com","path_prefix":"/x"}]}`,
			fresh(func(u *registry.Upstream) {
				u.Domains, u.LB, u.Keepalive = []string{"a.example.com"}, &registry.LoadBalancing{Policy: "maglev"}, 8
				u.Connection = &registry.ConnectionLimits{MaxConnections: 9}
				u.Timeouts = &registry.Timeouts{Connect: secs(2), Request: secs(30)}
				u.Retry = &registry.RetryPolicy{Tries: 3}
				u.HealthCheck = &registry.HealthCheck{Type: "grpc", Interval: secs(10)}
				u.Passive = &registry.PassiveHealth{MaxFails: ptr(0)}
				u.Protected = ptr(false)
				u.Routes = []registry.PathRoute{{Host: "gw.example.com", PathPrefix: "/x"}}
			})},

		{"mode absent", nil, `{"mode":null,` + servers + `}`, fresh(func(*registry.Upstream) {})},
		{"mode empty", nil, `{"mode":"",` + servers + `}`, fresh(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "round_robin"} })},
		{"mode rr", nil, `{"mode":"rr",` + servers + `}`, fresh(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "round_robin"} })},
		{"mode wrr", nil, `{"mode":"wrr",` + servers + `}`, fresh(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "round_robin"} })},
		{"mode hash", nil, `{"mode":"hash",` + servers + `}`, fresh(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{Path: true}) })},
		{"mode url_hash", nil, `{"mode":"url_hash",` + servers + `}`, fresh(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{Path: true}) })},
		{"mode ip_hash", nil, `{"mode":"ip_hash",` + servers + `}`, fresh(func(u *registry.Upstream) { u.LB = ring(registry.HashKey{SourceIP: true}) })},
		{"mode header_hash", nil, `{"mode":"header_hash",` + servers + `}`, fresh(func(u *registry.Upstream) {
			u.LB = ring(registry.HashKey{Header: "x-hash-key", Terminal: true}, registry.HashKey{Path: true})
		})},
		{"mode least_request", nil, `{"mode":"least_request",` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "least_request"} })},
		{"mode speed", nil, `{"mode":"speed",` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.LB = &registry.LoadBalancing{Policy: "least_request"} })},
		{"mode null on existing", rich(), `{"mode":null}`, with(func(u *registry.Upstream) { u.LB = nil })},

		{"timeout", nil, `{"timeout":2,` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.HealthCheck = &registry.HealthCheck{Type: "tcp", Timeout: secs(2)} })},
		{"timeout keeps probe", rich(), `{"timeout":2}`, with(func(u *registry.Upstream) { u.HealthCheck.Timeout = secs(2) })},
		{"typ general", rich(), `{"typ":"general"}`, with(func(u *registry.Upstream) { u.HealthCheck.Type = "tcp" })},
		{"typ redis", nil, `{"typ":"redis",` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.HealthCheck = &registry.HealthCheck{Type: "redis"} })},
		{"typ null is general", rich(), `{"typ":null}`, with(func(u *registry.Upstream) { u.HealthCheck.Type = "tcp" })},
		{"typ http without query is tcp", nil, `{"typ":"http",` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.HealthCheck = &registry.HealthCheck{Type: "tcp"} })},
		{"typ http with http_opts", nil, `{"typ":"http","http_opts":{"query":"GET /status HTTP/1.1\r\nHost: api.local\r\nX-Probe: 1\r\n\r\n","statuses":{"500":false,"502":false,"200":true}},` + servers + `}`,
			fresh(func(u *registry.Upstream) {
				u.HealthCheck = &registry.HealthCheck{Type: "http",
					HTTP:    &registry.HTTPCheck{Method: "GET", Path: "/status", Host: "api.local", BadStatuses: []int{500, 502}},
					Headers: []registry.HeaderPair{{Name: "X-Probe", Value: "1"}}}
			})},
		{"http_opts replaces probe", rich(), `{"http_opts":{"query":"HEAD /ping HTTP/1.0\r\n\r\n"}}`,
			with(func(u *registry.Upstream) { u.HealthCheck.HTTP = &registry.HTTPCheck{Method: "HEAD", Path: "/ping"} })},
		{"http_opts null is connect-only", rich(), `{"http_opts":null}`,
			with(func(u *registry.Upstream) { u.HealthCheck.HTTP, u.HealthCheck.Type = nil, "tcp" })},
		{"enable false", rich(), `{"enable":false}`, with(func(u *registry.Upstream) { u.HealthCheck.Enabled = ptr(false) })},
		{"enable true", nil, `{"enable":true,` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.HealthCheck = &registry.HealthCheck{Type: "tcp", Enabled: ptr(true)} })},
		{"sensibility", rich(), `{"sensibility":3}`, with(func(u *registry.Upstream) { u.HealthCheck.UnhealthyThreshold = 3 })},
		{"protected", rich(), `{"protected":false}`, with(func(u *registry.Upstream) { u.Protected = ptr(false) })},
		{"try keeps retry options", rich(), `{"try":4}`, with(func(u *registry.Upstream) { u.Retry.Tries = 4 })},
		{"try null", nil, `{"try":null,` + servers + `}`, fresh(func(*registry.Upstream) {})},
		{"try_timeout", rich(), `{"try_timeout":5}`, with(func(u *registry.Upstream) { u.Timeouts.Request = secs(5) })},
		{"try_timeout string", nil, `{"try_timeout":"1500ms",` + servers + `}`,
			fresh(func(u *registry.Upstream) { u.Timeouts = &registry.Timeouts{Request: secs(1.5)} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before []byte
			if tt.existing != nil {
				before, _ = json.Marshal(tt.existing)
			}
			got, err := Decode("api", []byte(tt.body), tt.existing)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, tt.want); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
			got.Normalize()
			if err := got.Validate(); err != nil {
				t.Errorf("result does not validate: %v", err)
			}
			if tt.existing != nil && string(before) != mustJSON(t, tt.existing) {
				t.Errorf("existing was modified: %s", mustJSON(t, tt.existing))
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, body string
		field, msg string // msg is a substring of FieldError.Msg
	}{
		{"not an object", `[1]`, "", "body invalid"},
		{"string body", `"x"`, "", "body invalid"},
		{"null body", `null`, "", "body invalid"},
		{"malformed", `{"servers":[`, "", "decode body error: unexpected end of JSON input"},
		{"trailing garbage", `{} x`, "", "decode body error: invalid character 'x'"},
		{"empty body", ``, "", "decode body error"},
		{"empty object", `{}`, "", "can not set empty upstream"},
		{"unknown key", `{"foo":1,"servers":[{"host":"10.0.0.1","port":80}]}`, "", `unknown field "foo"`},
		{"unknown nested key", `{"health_check":{"type":"tcp","foo":1}}`, "health_check", `unknown field "foo"`},
		{"unknown server key", `{"servers":[{"host":"10.0.0.1","port":80,"foo":1}]}`, "servers[0]", `unknown field "foo"`},
		{"unknown http_opts key", `{"http_opts":{"foo":1}}`, "http_opts", `unknown field "foo"`},
		{"unknown level key", `{"cluster":[{"try":2,"servers":[{"host":"10.0.0.1","port":80}]}]}`, "cluster[0]", `unknown field "try"`},
		{"wrong type", `{"keepalive":"x"}`, "keepalive", "want int, got string"},
		{"wrong nested type", `{"lb":{"policy":1}}`, "lb.policy", "want string, got number"},
		{"bad duration", `{"timeout":"soon"}`, "timeout", "is not a duration"},
		{"name mismatch", `{"name":"other"}`, "name", `"other" does not match the upstream "api"`},
		{"servers and cluster", `{"servers":[],"cluster":[]}`, "cluster", "not both"},
		{"empty servers", `{"servers":[]}`, "servers", "can not update empty level"},
		{"servers not a list", `{"servers":{"host":"10.0.0.1"}}`, "servers", "servers invalid"},
		{"server not an object", `{"servers":[{"host":"10.0.0.1","port":80},"10.0.0.2:80"]}`, "servers[1]", "servers invalid"},
		{"server without port", `{"servers":[{"host":"10.0.0.1","port":80},{"host":"10.0.0.2"}]}`, "servers[1]", "no server.host nor server.port found"},
		{"server without host", `{"servers":[{"host":null,"port":80}]}`, "servers[0]", "no server.host nor server.port found"},
		{"cluster not a list", `{"cluster":{"dc1":{"servers":[]}}}`, "cluster", "cluster invalid"},
		{"empty cluster", `{"cluster":[]}`, "cluster", "can not update empty level"},
		{"empty level", `{"cluster":[{"servers":[{"host":"10.0.0.1","port":80}]},{}]}`, "cluster[1]", "can not update empty level"},
		{"level not an object", `{"cluster":[1]}`, "cluster[0]", "can not update empty level"},
		{"level with empty servers", `{"cluster":[{"servers":[]}]}`, "cluster[0].servers", "can not update empty level"},
		{"level with null servers", `{"cluster":[{"servers":null}]}`, "cluster[0].servers", "servers invalid"},
		{"cluster server without host", `{"cluster":[{"servers":[{"host":"10.0.0.1","port":80}]},{"servers":[{"port":80}]}]}`,
			"cluster[1].servers[0]", "no server.host nor server.port found"},
		{"cluster level contradiction", `{"cluster":[{"servers":[{"host":"10.0.0.1","port":80,"level":2}]}]}`,
			"cluster[0].servers[0].level", "contradicts"},
		{"cluster backup in primary", `{"cluster":[{"servers":[{"host":"10.0.0.1","port":80,"backup":true}]}]}`,
			"cluster[0].servers[0].level", "contradicts"},
		{"bad mode", `{"mode":"random"}`, "mode", `"random" is not a balancing mode`},
		{"mode not a string", `{"mode":1}`, "mode", "want string"},
		{"typ mysql", `{"typ":"mysql"}`, "typ", `"mysql" is not supported`},
		{"typ mysql says tcp", `{"typ":"mysql"}`, "typ", `use "general" for a TCP connect check`},
		{"bad typ", `{"typ":"icmp"}`, "typ", `"icmp" is not one of general, http, redis`},
		{"bad query", `{"http_opts":{"query":"GARBAGE"}}`, "http_opts.query", "is not \"METHOD /path HTTP/1.x\""},
		{"bad status key", `{"http_opts":{"statuses":{"5xx":false}}}`, "http_opts.statuses", `"5xx" is not an HTTP status`},
		{"mode and lb", `{"mode":"hash","lb":{"policy":"maglev"}}`, "mode", `"mode" and "lb" both set the load balancing`},
		{"timeout and health_check", `{"timeout":1,"health_check":null}`, "timeout", `"timeout" and "health_check"`},
		{"typ and health_check", `{"typ":"http","health_check":{}}`, "typ", `"typ" and "health_check"`},
		{"http_opts and health_check", `{"http_opts":{},"health_check":{}}`, "http_opts", `"http_opts" and "health_check"`},
		{"enable and health_check", `{"enable":true,"health_check":{}}`, "enable", `"enable" and "health_check"`},
		{"sensibility and health_check", `{"sensibility":2,"health_check":{}}`, "sensibility", `"sensibility" and "health_check"`},
		{"try and retry", `{"try":2,"retry":{}}`, "try", `"try" and "retry"`},
		{"try_timeout and timeouts", `{"try_timeout":2,"timeouts":{}}`, "try_timeout", `"try_timeout" and "timeouts"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("api", []byte(tt.body), rich())
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *registry.FieldError, got %T %v", err, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("got field %q msg %q, want field %q msg containing %q", fe.Field, fe.Msg, tt.field, tt.msg)
			}
		})
	}
}

// What GET answers (json.Marshal of the stored upstream) must be accepted back unchanged.
func TestDecodeAcceptsGetOutput(t *testing.T) {
	u := *rich()
	u.Servers = []registry.Server{
		{Host: "10.0.0.1", Port: 80, Weight: 3, MaxFails: ptr(2), FailTimeout: &registry.Duration{Duration: 1500 * time.Millisecond}, Source: "admin"},
		{Host: "10.0.0.2", Port: 80, Level: 1, Backup: true, Zone: "b", Source: "consul"},
	}
	u.LB = &registry.LoadBalancing{Policy: "ring_hash", RingMinSize: 1024, ActiveRequestBias: ptr(1.5),
		HashKeys: []registry.HashKey{{Cookie: &registry.CookieKey{Name: "sid", TTL: secs(60)}}, {SourceIP: true}}}
	body := mustJSON(t, u)
	got, err := Decode("api", []byte(body), nil)
	if err != nil {
		t.Fatalf("Decode(GET output): %v\n%s", err, body)
	}
	for i := range u.Servers {
		u.Servers[i].Source = ""
	}
	if g, w := mustJSON(t, got), mustJSON(t, u); g != w {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestParseProbe(t *testing.T) {
	tests := []struct {
		raw     string
		want    registry.HTTPCheck
		headers []registry.HeaderPair
		err     string
	}{
		{raw: "GET /status HTTP/1.1\r\nHost: x\r\n\r\n", want: registry.HTTPCheck{Method: "GET", Path: "/status", Host: "x"}},
		{raw: "GET / HTTP/1.0\r\n\r\n", want: registry.HTTPCheck{Method: "GET", Path: "/"}},
		{raw: "HEAD /h\nhost: y\nX-A: 1\nX-B:  two words \n\n", want: registry.HTTPCheck{Method: "HEAD", Path: "/h", Host: "y"},
			headers: []registry.HeaderPair{{Name: "X-A", Value: "1"}, {Name: "X-B", Value: "two words"}}},
		{raw: "GET /x", want: registry.HTTPCheck{Method: "GET", Path: "/x"}},
		{raw: "GET", err: "request line"},
		{raw: "CONNECT / HTTP/1.1", err: `method "CONNECT"`},
		{raw: "GET status HTTP/1.1", err: "must start with /"},
		{raw: "GET / SPDY/3", err: "not HTTP/1.x"},
		{raw: "GET / HTTP/1.1\r\nno colon\r\n\r\n", err: "is not \"Name: value\""},
		{raw: "POST / HTTP/1.1\r\n\r\nbody", err: "request body"},
	}
	for _, tt := range tests {
		got, headers, err := ParseProbe(tt.raw)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseProbe(%q) error %v, want %q", tt.raw, err, tt.err)
			}
			continue
		}
		if err != nil || mustJSON(t, got) != mustJSON(t, tt.want) || mustJSON(t, headers) != mustJSON(t, tt.headers) {
			t.Errorf("ParseProbe(%q) = %+v %+v %v", tt.raw, got, headers, err)
		}
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
