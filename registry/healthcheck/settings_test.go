package healthcheck

import (
	"reflect"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
)

func TestExpectedStatuses(t *testing.T) {
	r := func(pairs ...int) []registry.StatusRange {
		var out []registry.StatusRange
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, registry.StatusRange{Start: pairs[i], End: pairs[i+1]})
		}
		return out
	}
	tests := []struct {
		name string
		h    *registry.HTTPCheck
		want []registry.StatusRange
	}{
		{"nothing set: 2xx and 3xx", nil, r(200, 400)},
		{"empty lists", &registry.HTTPCheck{Path: "/x"}, r(200, 400)},
		{"checkups bad statuses only", &registry.HTTPCheck{BadStatuses: []int{500, 502}}, r(100, 500, 501, 502, 503, 600)},
		{"bad at the edges", &registry.HTTPCheck{BadStatuses: []int{100, 599}}, r(101, 599)},
		{"expected ranges merged", &registry.HTTPCheck{ExpectedStatuses: r(200, 300, 300, 400, 404, 405)}, r(200, 400, 404, 405)},
		{"expected minus bad", &registry.HTTPCheck{ExpectedStatuses: r(200, 300), BadStatuses: []int{204, 299}}, r(200, 204, 205, 299)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExpectedStatuses(tt.h); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestActiveCheckDefaults(t *testing.T) {
	off := false
	if _, ok := ActiveCheck(&registry.Upstream{Name: "a"}); ok {
		t.Fatal("no health_check must mean no check")
	}
	if _, ok := ActiveCheck(&registry.Upstream{Name: "a", HealthCheck: &registry.HealthCheck{Type: "tcp", Enabled: &off}}); ok {
		t.Fatal("a disabled check must mean no check")
	}
	c, ok := ActiveCheck(&registry.Upstream{Name: "api", HealthCheck: &registry.HealthCheck{Type: "http"}})
	if !ok {
		t.Fatal("http check missing")
	}
	want := Check{Type: "http", Checker: CheckerEnvoy, Interval: DefaultInterval, Timeout: DefaultTimeout,
		HealthyThreshold: 1, UnhealthyThreshold: 1, Path: "/", Host: "api", Method: "GET", Expected: DefaultExpected}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if !c.ByEnvoy() || c.ByDynup() || !c.Healthy(302) || c.Healthy(404) || c.Healthy(500) {
		t.Fatalf("checker or statuses wrong: %+v", c)
	}
	both := Check{Checker: CheckerBoth}
	if !both.ByEnvoy() || !both.ByDynup() {
		t.Fatal("both means Envoy and dynup")
	}
}

func TestPassiveResolution(t *testing.T) {
	n := func(v int) *int { return &v }
	u := &registry.Upstream{Name: "a", Passive: &registry.PassiveHealth{FailTimeout: registry.Seconds(15)}, Servers: []registry.Server{
		{Host: "10.0.0.1", Port: 80, MaxFails: n(5), FailTimeout: registry.Seconds(20)},
		{Host: "10.0.0.2", Port: 80, MaxFails: n(2)},
		{Host: "10.0.0.3", Port: 80, MaxFails: n(0)},
		{Host: "10.0.0.4", Port: 80, FailTimeout: registry.Seconds(0)},
	}}
	want := []Passive{{5, 20 * time.Second}, {2, 15 * time.Second}, {0, 15 * time.Second}, {DefaultMaxFails, 15 * time.Second}}
	for i := range u.Servers {
		if got := ServerPassive(u, &u.Servers[i]); got != want[i] {
			t.Errorf("server %d: got %+v, want %+v", i, got, want[i])
		}
	}
	if got := ClusterPassive(u); got != (Passive{2, 15 * time.Second}) {
		t.Errorf("cluster: got %+v, want the smallest of the counting servers", got)
	}
	allOff := &registry.Upstream{Name: "b", Passive: &registry.PassiveHealth{MaxFails: n(0)}, Servers: []registry.Server{{Host: "10.0.0.1", Port: 80}}}
	if !ClusterPassive(allOff).Off() {
		t.Error("max_fails 0 on the upstream must turn the cluster's detection off")
	}
	if got := ClusterPassive(&registry.Upstream{Name: "c"}); got != (Passive{DefaultMaxFails, DefaultFailTimeout}) {
		t.Errorf("no servers: got %+v, want the defaults", got)
	}
}
