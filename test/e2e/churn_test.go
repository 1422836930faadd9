package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/dynup/dynup/test/harness"
)

// churnSettings are B5's knobs (docs/benchmarks.md). The defaults keep `go test` short; the benchmark run is
// DYNUP_CHURN_DURATION=60s.
type churnSettings struct {
	duration time.Duration // how long upstreams keep changing
	rate     float64       // changes per second
	clients  int           // gRPC-Go xDS clients, each with a channel to every churned upstream
}

func churnFromEnv(t *testing.T) churnSettings {
	s := churnSettings{duration: 10 * time.Second, rate: 10, clients: 3}
	if v := os.Getenv("DYNUP_CHURN_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 30*time.Minute {
			t.Fatalf("DYNUP_CHURN_DURATION=%q: want a duration up to 30m", v)
		}
		s.duration = d
	}
	if v := os.Getenv("DYNUP_CHURN_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r > 1000 {
			t.Fatalf("DYNUP_CHURN_RATE=%q: want changes per second, up to 1000", v)
		}
		s.rate = r
	}
	if v := os.Getenv("DYNUP_CHURN_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50 {
			t.Fatalf("DYNUP_CHURN_CLIENTS=%q: want 1 to 50", v)
		}
		s.clients = n
	}
	return s
}

// B5: real gRPC-Go xDS clients send RPCs without pause while upstreams change 10 times a second — their
// servers swapped, their balancing policy switched, other upstreams created and deleted (which changes
// every listener a gRPC node reads) — and not one RPC fails. Every backend stays up throughout: a failed
// RPC here can only come from the configuration changing.
func TestChurnFailsNoRPC(t *testing.T) {
	s := churnFromEnv(t)
	d := harness.StartDynup(t, t.TempDir())
	var backends []*harness.Backend
	for _, name := range []string{"A", "B", "C", "D", "E", "F"} {
		backends = append(backends, harness.StartBackend(t, name))
	}
	upstreams := []string{"churn-0", "churn-1", "churn-2"}
	for i, name := range upstreams {
		d.MustDo(t, http.MethodPost, "/upstream/"+name, serversJSON(backends[i], backends[i+1]))
	}

	type channel struct {
		upstream string
		cc       *grpc.ClientConn
	}
	var channels []channel
	for c := 0; c < s.clients; c++ {
		node := harness.ClientNode{ID: fmt.Sprintf("churn-client-%d", c), Zone: []string{"a", "b"}[c%2]}
		for i, name := range upstreams {
			cc := harness.XDSClient(t, d.XDSAddr, name, node)
			waitReachesOnly(t, cc, backends[i].Name, backends[i+1].Name)
			channels = append(channels, channel{name, cc})
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for _, ch := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := harness.Who(context.Background(), ch.cc); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, ch.upstream+": "+err.Error())
				}
				sent.Add(1)
			}
		}()
	}

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kinds := map[string]int{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / s.rate))
	defer tick.Stop()
	deadline := time.Now().Add(s.duration)
	changes := 0
	for time.Now().Before(deadline) {
		<-tick.C
		kind, path, body := churnChange(rng, upstreams, backends)
		if code, b := d.Do(t, methodOf(body), path, body); code != http.StatusOK && !(kind == "delete" && code == http.StatusNotFound) {
			t.Fatalf("%s %s: %d %s", kind, path, code, b)
		}
		kinds[kind]++
		changes++
	}
	// The last word: each churned upstream on two known servers; traffic must follow, without failures.
	for i, name := range upstreams {
		d.MustDo(t, http.MethodPost, "/upstream/"+name, serversJSON(backends[i+3], backends[(i+4)%len(backends)]))
	}
	for _, ch := range channels {
		i := indexOf(upstreams, ch.upstream)
		waitReachesOnly(t, ch.cc, backends[i+3].Name, backends[(i+4)%len(backends)].Name)
	}
	stop()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d RPCs failed during %d changes in %s (%v); first: %v", failed.Load(), sent.Load(), changes, s.duration,
			kinds, firstErr.Load())
	}
	if sent.Load() < int64(len(channels)) {
		t.Fatalf("only %d RPCs were sent", sent.Load())
	}
	t.Logf("B5: %d RPCs from %d gRPC-Go xDS clients (%d channels), 0 failed, during %d changes in %s (%.1f/s): %v",
		sent.Load(), s.clients, len(channels), changes, s.duration, float64(changes)/s.duration.Seconds(), kinds)
}

// churnChange picks one change: mostly a server swap on a churned upstream (the endpoint path), sometimes
// a policy switch (a cluster change), sometimes an unrelated upstream created or deleted (a change of
// listeners and routes).
func churnChange(rng *rand.Rand, upstreams []string, backends []*harness.Backend) (kind, path, body string) {
	name := upstreams[rng.Intn(len(upstreams))]
	switch r := rng.Intn(10); {
	case r < 7:
		perm := rng.Perm(len(backends))
		n := 1 + rng.Intn(3)
		var set []*harness.Backend
		for _, i := range perm[:n] {
			set = append(set, backends[i])
		}
		return "servers", "/upstream/" + name, serversJSON(set...)
	case r < 9:
		policy := []string{"round_robin", "least_request"}[rng.Intn(2)]
		perm := rng.Perm(len(backends))
		servers := serversJSON(backends[perm[0]], backends[perm[1]])
		return "policy", "/upstream/" + name, strings.TrimSuffix(servers, "}") + `,"lb":{"policy":"` + policy + `"}}`
	default:
		other := fmt.Sprintf("/upstream/bystander-%d", rng.Intn(3))
		if rng.Intn(2) == 0 {
			return "delete", other, ""
		}
		return "create", other, serversJSON(backends[rng.Intn(len(backends))])
	}
}

func methodOf(body string) string {
	if body == "" {
		return http.MethodDelete
	}
	return http.MethodPost
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
