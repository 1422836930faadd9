package dyups

import (
	"strings"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
)

func TestFormatSeed(t *testing.T) {
	u, err := Parse("api", seedBody, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "server 127.0.0.1:8089;\nserver 127.0.0.1:8088 weight=2 max_fails=3 fail_timeout=10s backup;\n"
	if got := Format(u); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFormatText(t *testing.T) {
	u := registry.Upstream{Name: "api",
		Servers: []registry.Server{
			{Host: "10.0.0.1", Port: 80, Weight: 1, FailTimeout: dur(1500 * time.Millisecond)},
			{Host: "::1", Port: 8080, Level: 1, Down: true, MaxFails: ptr(0)},
		},
		LB:         ring(registry.HashKey{Header: "X-User-Id"}),
		Keepalive:  8,
		Connection: &registry.ConnectionLimits{MaxConnections: 5},
		HealthCheck: &registry.HealthCheck{Type: "http", Interval: dur(2 * time.Second), Timeout: dur(1500 * time.Microsecond),
			HealthyThreshold: 1, UnhealthyThreshold: 3,
			HTTP: &registry.HTTPCheck{Path: `/s"q`, Host: "h", ExpectedStatuses: []registry.StatusRange{{Start: 200, End: 400}}}},
	}
	want := `server 10.0.0.1:80 weight=1 fail_timeout=1500ms max_conns=5;
server [::1]:8080 max_fails=0 max_conns=5 backup down;
hash $http_x_user_id consistent;
keepalive 8;
check type=http interval=2000 timeout=2 rise=1 fall=3;
check_http_send "GET /s\"q HTTP/1.0\r\nHost: h\r\n\r\n";
check_http_expect_alive http_2xx http_3xx;
`
	if got := Format(u); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// Settings dyups cannot express are named in comments, and the text still parses.
func TestFormatNamesWhatIsLost(t *testing.T) {
	u := registry.Upstream{Name: "api",
		Servers: []registry.Server{{Host: "10.0.0.1", Port: 80, Zone: "a\nserver 10.6.6.6"}, {Host: "10.0.0.2", Port: 80, Level: 2}},
		LB: &registry.LoadBalancing{Policy: "maglev", SlowStart: dur(time.Second), HashKeys: []registry.HashKey{
			{Cookie: &registry.CookieKey{Name: "sid", TTL: dur(time.Minute)}}, {Path: true}}},
		HealthCheck: &registry.HealthCheck{Type: "redis"},
	}
	got := Format(u)
	for _, want := range []string{`zone "a\nserver 10.6.6.6"`, "level 2", "maglev", "lb options", "1 fallback hash keys",
		"the hash key", "the redis health check"} {
		if !strings.Contains(got, want) {
			t.Errorf("Format does not mention %q:\n%s", want, got)
		}
	}
	back, err := Parse("api", got, nil)
	if err != nil {
		t.Fatalf("Parse(Format): %v\n%s", err, got)
	}
	if len(back.Servers) != 2 || back.LB != nil || back.HealthCheck != nil {
		t.Errorf("comments were read as directives: %+v", back)
	}
	for _, other := range []registry.Upstream{
		{Servers: one("10.0.0.1", 80), LB: &registry.LoadBalancing{Policy: "least_request", ChoiceCount: 3}},
		{Servers: one("10.0.0.1", 80), LB: &registry.LoadBalancing{Policy: "ring_hash"}},
		{Servers: one("10.0.0.1", 80), HealthCheck: &registry.HealthCheck{Type: "http", Enabled: ptr(false)}},
		{Servers: one("10.0.0.1", 80), HealthCheck: &registry.HealthCheck{Interval: dur(time.Second)}},
		{Servers: one("10.0.0.1", 80), HealthCheck: &registry.HealthCheck{Type: "tcp", Jitter: dur(time.Second),
			HTTP: &registry.HTTPCheck{Path: "/"}}},
		{Servers: one("10.0.0.1", 80), HealthCheck: &registry.HealthCheck{Type: "http", HTTP: &registry.HTTPCheck{
			BadStatuses: []int{502}, ExpectedStatuses: []registry.StatusRange{{Start: 200, End: 205}}}}},
	} {
		text := Format(other)
		if !strings.Contains(text, "# not expressible in dyups: ") {
			t.Errorf("Format(%+v) names nothing lost:\n%s", other, text)
		}
		if _, err := Parse("api", text, nil); err != nil {
			t.Errorf("Parse(Format(%+v)): %v\n%s", other, err, text)
		}
	}
}

// canonical fills the defaults Format writes out, so "unset" and "the default" compare equal.
func canonical(t *testing.T, u registry.Upstream) string {
	u.Normalize()
	if hc := u.HealthCheck; hc != nil && hc.Type == "http" {
		h := registry.HTTPCheck{}
		if hc.HTTP != nil {
			h = *hc.HTTP
		}
		if h.Method == "" {
			h.Method = "GET"
		}
		if h.Path == "" {
			h.Path = "/"
		}
		c := *hc
		c.HTTP = &h
		u.HealthCheck = &c
	}
	return mustJSON(t, u)
}

func TestRoundTrip(t *testing.T) {
	bodies := []string{
		seedBody,
		"server [2001:db8::1]:8443 weight=5 max_fails=0 fail_timeout=250ms max_conns=9 down; server 10.0.0.2 max_conns=3 backup; least_conn; keepalive 4;",
		"server 10.0.0.1; ip_hash;",
		"server 10.0.0.1; random;",
		"server 10.0.0.1; hash $uri;",
		"server 10.0.0.1; hash $arg_uid consistent;",
		"server 10.0.0.1; hash $http_x_tenant consistent;",
		"server 10.0.0.1; consistent_hash $cookie_sid;",
		`server 10.0.0.1; check interval=3000 rise=2 fall=5 timeout=1000 type=http;
		 check_http_send "POST /health HTTP/1.1\r\nHost: a.b\r\nX-A: \"q\" \\ x\r\n\r\n"; check_http_expect_alive http_2xx http_4xx;`,
		"server 10.0.0.1; check type=http;",
		"server 10.0.0.1; check;",
	}
	for _, body := range bodies {
		u, err := Parse("api", body, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", body, err)
		}
		text := Format(u)
		back, err := Parse("api", text, nil)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))): %v\n%s", body, err, text)
		}
		if g, w := canonical(t, back), canonical(t, u); g != w {
			t.Errorf("round trip of %q\n got %s\nwant %s\ntext:\n%s", body, g, w, text)
		}
	}

	// A built upstream uses the model's defaults (empty method, weight 1) that Format spells out.
	built := registry.Upstream{Name: "api",
		Servers:     []registry.Server{{Host: "10.0.0.1", Port: 80, Weight: 1}, {Host: "10.0.0.2", Port: 81, Backup: true}},
		LB:          ring(registry.HashKey{SourceIP: true}),
		Connection:  &registry.ConnectionLimits{MaxConnections: 100},
		HealthCheck: &registry.HealthCheck{Type: "http", Timeout: dur(time.Second), HTTP: &registry.HTTPCheck{Host: "x"}},
	}
	back, err := Parse("api", Format(built), nil)
	if err != nil {
		t.Fatalf("Parse(Format(built)): %v\n%s", err, Format(built))
	}
	if g, w := canonical(t, back), canonical(t, built); g != w {
		t.Errorf("round trip of a built upstream\n got %s\nwant %s", g, w)
	}
}
