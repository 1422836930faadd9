package slardar

import (
	"errors"
	"testing"

	"github.com/dynup/dynup/registry"
)

// FuzzDecode checks that no body panics, that every failure is a FieldError, and that an accepted,
// valid result survives the GET → POST round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, body := range []string{
		seedBody,
		`{"cluster":[{"servers":[{"host":"10.0.0.1","port":80}]},{"servers":[{"host":"::1","port":81}]}]}`,
		`{"mode":"header_hash","typ":"http","http_opts":{"query":"GET /s HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n","statuses":{"502":false}}}`,
		`{"timeout":2,"enable":false,"sensibility":3,"try":2,"try_timeout":"1s","protected":false,"keepalive":null}`,
		`{"servers":[{"host":"10.0.0.1","port":80,"weight":2,"max_fails":3,"fail_timeout":"10s","source":"x"}],"name":"api"}`,
		`{"lb":{"policy":"ring_hash","hash_keys":[{"cookie":{"name":"a","ttl":5}}]},"health_check":{"type":"http"}}`,
		`{"servers":[],"cluster":[]}`, `[]`, `{`, `{}`, `{"foo":1}`, `{"servers":[1]}`,
	} {
		f.Add(body, true)
		f.Add(body, false)
	}
	f.Fuzz(func(t *testing.T, body string, withExisting bool) {
		var existing *registry.Upstream
		if withExisting {
			existing = rich()
		}
		u, err := Decode("api", []byte(body), existing)
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
		again, err := Decode("api", []byte(mustJSON(t, u)), nil)
		if err != nil {
			t.Fatalf("GET output rejected: %v\n%s", err, mustJSON(t, u))
		}
		again.Normalize()
		if g, w := mustJSON(t, again), mustJSON(t, u); g != w {
			t.Fatalf("round trip changed the upstream\n got %s\nwant %s", g, w)
		}
	})
}
