package slardar

import (
	"errors"
	"strings"
	"testing"

	"github.com/dynup/dynup/registry"
)

// Traffic-policy options as the admin API and Consul KV receive them: decoded, normalized, validated.
func TestPolicyOptions(t *testing.T) {
	const servers = `"servers":[{"host":"10.0.0.1","port":80}]`
	valid := []string{
		`"lb":{"policy":"round_robin","slow_start":"30s"}`,
		`"lb":{"policy":"least_request","choice_count":3,"active_request_bias":1.5}`,
		`"lb":{"policy":"random"}`,
		`"lb":{"policy":"ring_hash","ring_min_size":1024,"ring_max_size":4096,"hash_keys":[{"cookie":{"name":"sid","ttl":"1h","path":"/"},"terminal":true},{"header":"X-User"},{"source_ip":true},{"query_param":"uid"},{"path":true}]}`,
		`"lb":{"policy":"ring_hash","ring_max_size":2048}`,
		`"lb":{"policy":"maglev","maglev_table_size":65537,"hash_keys":[{"header":"x-shard"}]}`,
		`"retry":{"tries":3,"per_try_timeout":"2s","on":["5xx","retriable-status-codes","unavailable"],"status_codes":[503],"backoff_base":"50ms","backoff_max":"1s","host_selection_attempts":5}`,
		`"retry":{"tries":1}`,
		`"retry":{"grpc_on":["unavailable","resource-exhausted"],"other_host":false,"budget_percent":50}`,
		`"timeouts":{"connect":"1s","request":"10s","idle":0}`,
		`"connection":{"max_connections":100,"max_pending_requests":50,"max_requests":200,"max_retries":10,"max_requests_per_connection":1000,"idle_timeout":"90s","http2":true},"keepalive":20`,
		`"routes":[{"host":"Gateway.example.com","path_prefix":"/beautify"}]`,
	}
	for _, opts := range valid {
		u, err := Decode("api", []byte(`{`+servers+`,`+opts+`}`), nil)
		if err == nil {
			u.Normalize()
			err = u.Validate()
		}
		if err != nil {
			t.Errorf("%s: %v", opts, err)
		}
	}

	invalid := []struct{ opts, field, msg string }{
		{`"lb":{"policy":"fastest"}`, "lb.policy", "not one of"},
		{`"lb":{"policy":"round_robin","hash_keys":[{"header":"x"}]}`, "lb.hash_keys", "only applies to ring_hash and maglev"},
		{`"lb":{"ring_min_size":1024}`, "lb.ring_min_size", "only applies to ring_hash"},
		{`"lb":{"policy":"maglev","ring_min_size":1024}`, "lb.ring_min_size", "only applies to ring_hash"},
		{`"lb":{"policy":"ring_hash","maglev_table_size":65537}`, "lb.maglev_table_size", "only applies to maglev"},
		{`"lb":{"policy":"ring_hash","ring_min_size":4096,"ring_max_size":1024}`, "lb.ring_min_size", "larger than ring_max_size"},
		{`"lb":{"policy":"ring_hash","ring_max_size":512}`, "lb.ring_max_size", "below the default ring_min_size 1024"},
		{`"lb":{"policy":"ring_hash","ring_max_size":9000000}`, "lb.ring_max_size", "more than"},
		{`"lb":{"policy":"maglev","maglev_table_size":65536}`, "lb.maglev_table_size", "not a prime"},
		{`"lb":{"policy":"least_request","choice_count":1}`, "lb.choice_count", "out of range"},
		{`"lb":{"policy":"least_request","choice_count":11}`, "lb.choice_count", "out of range"},
		{`"lb":{"policy":"least_request","active_request_bias":-1}`, "lb.active_request_bias", "[0, 100]"},
		{`"lb":{"policy":"random","slow_start":"10s"}`, "lb.slow_start", "only applies to round_robin and least_request"},
		{`"lb":{"policy":"ring_hash","hash_keys":[{}]}`, "lb.hash_keys[0]", "exactly one"},
		{`"lb":{"policy":"ring_hash","hash_keys":[{"header":"x","path":true}]}`, "lb.hash_keys[0]", "exactly one"},
		{`"lb":{"policy":"ring_hash","hash_keys":[{"header":"x y"}]}`, "lb.hash_keys[0].header", "not a header name"},
		{`"lb":{"policy":"ring_hash","hash_keys":[{"cookie":{"name":"sid","path":"x"}}]}`, "lb.hash_keys[0].cookie.path", "must start with /"},
		{`"lb":{"policy":"ring_hash","hash_keys":[{"query_param":"a=b"}]}`, "lb.hash_keys[0].query_param", "not a query parameter"},
		{`"retry":{"tries":11}`, "retry.tries", "out of range"},
		{`"retry":{"on":["sometimes"]}`, "retry.on[0]", "not a retry condition"},
		{`"retry":{"grpc_on":["5xx"]}`, "retry.grpc_on[0]", "not a gRPC retry condition"},
		{`"retry":{"on":["retriable-status-codes"]}`, "retry.status_codes", "required"},
		{`"retry":{"on":["5xx"],"status_codes":[503]}`, "retry.status_codes", "only apply"},
		{`"retry":{"status_codes":[99]}`, "retry.status_codes[0]", "not an HTTP status"},
		{`"retry":{"backoff_base":"100ms","backoff_max":"50ms"}`, "retry.backoff_max", "at least backoff_base"},
		{`"retry":{"budget_percent":0}`, "retry.budget_percent", "(0, 100]"},
		{`"retry":{"budget_percent":20},"connection":{"max_retries":3}`, "connection.max_retries", "give one of them"},
		{`"timeouts":{"connect":0}`, "timeouts.connect", "must be positive"},
		{`"routes":[{"host":"gw","path_prefix":"beautify"}]`, "routes[0].path_prefix", "must start with /"},
		{`"routes":[{"host":"gw:80","path_prefix":"/b"}]`, "routes[0].host", "not a host name"},
		{`"keepalive":-1`, "keepalive", "negative"},
		{`"lb":{"policy":"ring_hash","hash_key":[]}`, "lb", "unknown field"},
	}
	for _, tc := range invalid {
		u, err := Decode("api", []byte(`{`+servers+`,`+tc.opts+`}`), nil)
		if err == nil {
			u.Normalize()
			err = u.Validate()
		}
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%s: got %v, want field %q with %q", tc.opts, err, tc.field, tc.msg)
		}
	}
}

// checkups' "mode" maps onto the balancing policies.
func TestModeMapsToPolicy(t *testing.T) {
	for mode, want := range map[string]string{
		"rr": "round_robin", "wrr": "round_robin", "": "round_robin",
		"hash": "ring_hash", "url_hash": "ring_hash", "ip_hash": "ring_hash", "header_hash": "ring_hash",
		"least_request": "least_request", "speed": "least_request",
	} {
		u, err := Decode("api", []byte(`{"servers":[{"host":"10.0.0.1","port":80}],"mode":"`+mode+`"}`), nil)
		if err != nil {
			t.Fatalf("mode %q: %v", mode, err)
		}
		if u.LB == nil || u.LB.Policy != want {
			t.Errorf("mode %q: lb %+v, want policy %s", mode, u.LB, want)
		}
	}
}
