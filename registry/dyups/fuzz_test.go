package dyups

import (
	"errors"
	"testing"

	"github.com/dynup/dynup/registry"
)

// FuzzParse checks that no body panics, that every failure is a FieldError, and that a valid result
// survives Format and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, body := range []string{
		seedBody,
		"server [::1]:80 weight=2 max_conns=3; server 10.0.0.2 max_conns=1 down; least_conn; keepalive 2;",
		"server 10.0.0.1; hash $http_x_a consistent; # c\n",
		"server 10.0.0.1; consistent_hash $cookie_s; check interval=1000 rise=1 fall=2 timeout=500 type=http default_down=false;" +
			`check_http_send "GET /s HTTP/1.0\r\nHost: h\r\nA: b\r\n\r\n"; check_http_expect_alive http_2xx http_3xx;`,
		"server 10.0.0.1; ip_hash; hash $uri;", `server 10.0.0.1; check_http_send 'x`, "server a.b;", "{", "",
	} {
		f.Add(body, true)
		f.Add(body, false)
	}
	f.Fuzz(func(t *testing.T, body string, withExisting bool) {
		var e *registry.Upstream
		if withExisting {
			e = existing()
		}
		u, err := Parse("api", body, e)
		if err != nil {
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, want *registry.FieldError: %v", err, err)
			}
			return
		}
		u.Normalize()
		if u.Validate() != nil {
			return
		}
		text := Format(u)
		back, err := Parse("api", text, e)
		if err != nil {
			t.Fatalf("Parse(Format(u)): %v\n%s", err, text)
		}
		if g, w := canonical(t, back), canonical(t, u); g != w {
			t.Fatalf("round trip changed the upstream\n got %s\nwant %s\ntext:\n%s", g, w, text)
		}
	})
}
