package registry

import (
	"errors"
	"testing"
	"time"
)

func TestHealthValidation(t *testing.T) {
	off := false
	n := func(v int) *int { return &v }
	d := func(v time.Duration) *Duration { return &Duration{v} }
	tests := []struct {
		name  string
		edit  func(u *Upstream)
		field string // "" means valid
	}{
		{"tcp defaults", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp"} }, ""},
		{"full http", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "http", Checker: "both", Interval: d(time.Second), Timeout: d(time.Second), Jitter: d(time.Second),
				HealthyThreshold: 2, UnhealthyThreshold: 3, Headers: []HeaderPair{{Name: "X-Probe", Value: "1"}},
				HTTP: &HTTPCheck{Path: "/status", Host: "api.local", Method: "HEAD", BadStatuses: []int{500}}}
		}, ""},
		{"disabled settings without a type", func(u *Upstream) { u.HealthCheck = &HealthCheck{Enabled: &off, Interval: d(time.Second)} }, ""},
		{"http probe kept under tcp (Slardar keeps it)", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "tcp", HTTP: &HTTPCheck{Path: "/x"}}
		}, ""},
		{"settings without a type", func(u *Upstream) { u.HealthCheck = &HealthCheck{Interval: d(time.Second)} }, "health_check.type"},
		{"unknown type", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "mysql"} }, "health_check.type"},
		{"unknown checker", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp", Checker: "me"} }, "health_check.checker"},
		{"interval too short", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp", Interval: d(10 * time.Millisecond)} }, "health_check.interval"},
		{"zero timeout", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp", Timeout: d(0)} }, "health_check.timeout"},
		{"threshold too large", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp", UnhealthyThreshold: 101} }, "health_check.unhealthy_threshold"},
		{"negative threshold", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp", HealthyThreshold: -1} }, "health_check.healthy_threshold"},
		{"grpc service on tcp", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "tcp", GRPCService: "x"} }, "health_check.grpc_service"},
		{"redis key on http", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "http", RedisKey: "x"} }, "health_check.redis_key"},
		{"path without slash", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "http", HTTP: &HTTPCheck{Path: "status"}} }, "health_check.http.path"},
		{"method", func(u *Upstream) { u.HealthCheck = &HealthCheck{Type: "http", HTTP: &HTTPCheck{Method: "CONNECT"}} }, "health_check.http.method"},
		{"bad range", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "http", HTTP: &HTTPCheck{ExpectedStatuses: []StatusRange{{Start: 300, End: 200}}}}
		}, "health_check.http.expected_statuses[0]"},
		{"bad status", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "http", HTTP: &HTTPCheck{BadStatuses: []int{600}}}
		}, "health_check.http.bad_statuses[0]"},
		{"nothing healthy", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "http", HTTP: &HTTPCheck{ExpectedStatuses: []StatusRange{{Start: 200, End: 201}}, BadStatuses: []int{200}}}
		}, "health_check.http.bad_statuses"},
		{"host header", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "http", Headers: []HeaderPair{{Name: "Host", Value: "x"}}}
		}, "health_check.headers[0].name"},
		{"header line break", func(u *Upstream) {
			u.HealthCheck = &HealthCheck{Type: "grpc", Headers: []HeaderPair{{Name: "x", Value: "a\r\nb"}}}
		}, "health_check.headers[0].value"},
		{"passive max_fails", func(u *Upstream) { u.Passive = &PassiveHealth{MaxFails: n(-1)} }, "passive.max_fails"},
		{"passive fail_timeout", func(u *Upstream) { u.Passive = &PassiveHealth{FailTimeout: d(0)} }, "passive.fail_timeout"},
		{"passive off", func(u *Upstream) { u.Passive = &PassiveHealth{MaxFails: n(0)} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Upstream{Name: "api", Servers: []Server{{Host: "10.0.0.1", Port: 80}}}
			tt.edit(&u)
			err := u.Validate()
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Fatalf("got %v, want an error naming %s", err, tt.field)
			}
		})
	}
	for i, s := range []Server{{MaxFails: n(MaxMaxFails + 1)}, {FailTimeout: d(0)}} {
		if err := validateServersPassive([]Server{s}); err == nil {
			t.Errorf("server case %d: want an error", i)
		}
	}
}
