package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/test/consulagent"
	"github.com/dynup/dynup/test/harness"
)

func register(t *testing.T, agent *consulagent.Agent, service string, b *harness.Backend, ttl bool) string {
	t.Helper()
	id := service + "-" + b.Name
	reg := api.AgentServiceRegistration{ID: id, Name: service, Address: b.Host, Port: b.Port}
	if ttl {
		reg.Check = &api.AgentServiceCheck{CheckID: id + "-ttl", TTL: "10m", Status: api.HealthPassing}
	}
	agent.RegisterService(t, reg)
	return id
}

func consulDynup(t *testing.T, agent *consulagent.Agent) *harness.Dynup {
	return harness.StartDynup(t, t.TempDir(), "--consul-addr", agent.Addr())
}

// 1. Register two instances → a gRPC-Go xDS client's RPCs reach both; deregister one → traffic leaves it.
// 2. A TTL check set to critical removes the instance; passing brings it back.
func TestConsulCatalogDrivesTraffic(t *testing.T) {
	agent := consulagent.Start(t)
	a, b := harness.StartBackend(t, "A"), harness.StartBackend(t, "B")
	register(t, agent, "imgprocess", a, true)
	idB := register(t, agent, "imgprocess", b, true)
	d := consulDynup(t, agent)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B")

	agent.SetTTL(t, idB+"-ttl", api.HealthCritical)
	waitReachesOnly(t, cc, "A")
	agent.SetTTL(t, idB+"-ttl", api.HealthPassing)
	waitReachesOnly(t, cc, "A", "B")

	agent.Deregister(t, idB)
	waitReachesOnly(t, cc, "A")

	var detail struct {
		Upstreams []struct {
			Name    string `json:"name"`
			Servers []struct {
				Port   int    `json:"port"`
				Source string `json:"source"`
			} `json:"servers"`
		} `json:"upstreams"`
	}
	d.GetJSON(t, "/detail", &detail)
	if len(detail.Upstreams) != 1 || detail.Upstreams[0].Servers[0].Source != "consul" {
		t.Fatalf("detail: %+v", detail)
	}
	// Three health changes above, each seen by the service's blocking query.
	if got := metricSum(scrapeMetrics(t, d), "dynup_consul_watch_seconds", "watch", "consul-health", "outcome", "change"); got < 3 {
		t.Errorf("dynup_consul_watch_seconds{watch=consul-health,outcome=change} count = %v, want ≥ 3", got)
	}
}

// 3. A KV write of upstream options (ring hash) is applied without restart; the catalog still gives servers.
func TestConsulKVOptionsApplyLive(t *testing.T) {
	agent := consulagent.Start(t)
	a := harness.StartBackend(t, "A")
	register(t, agent, "imgprocess", a, false)
	d := consulDynup(t, agent)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")

	opts := `{"lb":{"policy":"ring_hash","hash_keys":[{"header":"x-user"}]},"domains":["imgprocess","img.example.com"]}`
	if _, err := agent.Client(t).KV().Put(&api.KVPair{Key: "dynup/upstreams/imgprocess", Value: []byte(opts)}, nil); err != nil {
		t.Fatal(err)
	}
	harness.Until(t, 10*time.Second, func() error {
		var u struct {
			LB      *struct{ Policy string }  `json:"lb"`
			Domains []string                  `json:"domains"`
			Servers []struct{ Source string } `json:"servers"`
		}
		d.GetJSON(t, "/upstream/imgprocess", &u)
		if u.LB == nil || u.LB.Policy != "ring_hash" || len(u.Domains) != 2 || len(u.Servers) != 1 {
			return fmt.Errorf("upstream is %+v", u)
		}
		return nil
	})
	// The new domain is served too: a client dialling it reaches the catalog's server.
	other := harness.XDSClient(t, d.XDSAddr, "img.example.com", harness.ClientNode{ID: "client-2"})
	waitReachesOnly(t, other, "A")

	// Options alone are enough over the admin API too when the catalog gives the servers; not otherwise.
	if code, body := d.Do(t, http.MethodPost, "/upstream/imgprocess", `{"lb":{"policy":"least_request"}}`); code != http.StatusOK {
		t.Fatalf("options-only POST for a catalog service: %d %s", code, body)
	}
	if code, body := d.Do(t, http.MethodPost, "/upstream/nosuchservice", `{"lb":{"policy":"least_request"}}`); code != http.StatusBadRequest {
		t.Fatalf("options-only POST without any servers: %d %s, want 400", code, body)
	}
	waitReachesOnly(t, cc, "A")
}

// 4. An admin POST in Consul mode lands in KV; a write based on an outdated read gets 409 and writes nothing.
func TestConsulAdminWritesThroughToKV(t *testing.T) {
	agent := consulagent.Start(t)
	a := harness.StartBackend(t, "A")
	d := consulDynup(t, agent)
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(a))
	pair, _, err := agent.Client(t).KV().Get("dynup/upstreams/imgprocess", nil)
	if err != nil || pair == nil {
		t.Fatalf("KV after POST: %v %v", pair, err)
	}
	var stored struct {
		Servers []struct{ Port int } `json:"servers"`
	}
	if err := json.Unmarshal(pair.Value, &stored); err != nil || len(stored.Servers) != 1 || stored.Servers[0].Port != a.Port {
		t.Fatalf("KV holds %s", pair.Value)
	}
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")

	// Two replicas race on one upstream: every answer is 200 or 409, and KV ends with a write that got 200.
	d2 := consulDynup(t, agent)
	var mu sync.Mutex
	accepted := map[int]bool{}
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	for i, replica := range []*harness.Dynup{d, d2, d, d2, d, d2, d, d2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			port := 9000 + i
			code, body := replica.Do(t, http.MethodPost, "/upstream/race", fmt.Sprintf(`{"servers":[{"host":"10.0.0.1","port":%d}]}`, port))
			switch code {
			case http.StatusOK:
				mu.Lock()
				accepted[port] = true
				mu.Unlock()
			case http.StatusConflict:
				conflicts.Add(1)
			default:
				t.Errorf("replica answered %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	pair, _, _ = agent.Client(t).KV().Get("dynup/upstreams/race", nil)
	var final struct {
		Servers []struct{ Port int } `json:"servers"`
	}
	json.Unmarshal(pair.Value, &final)
	if len(final.Servers) != 1 || !accepted[final.Servers[0].Port] {
		t.Fatalf("KV holds port %v, accepted writes were %v", final.Servers, accepted)
	}
	t.Logf("8 racing writes: %d accepted, %d conflicts", len(accepted), conflicts.Load())
}

// 5. Two dynup replicas on one Consul serve the same snapshot version.
func TestConsulReplicasServeTheSameVersion(t *testing.T) {
	agent := consulagent.Start(t)
	a, b := harness.StartBackend(t, "A"), harness.StartBackend(t, "B")
	register(t, agent, "imgprocess", a, false)
	d1, d2 := consulDynup(t, agent), consulDynup(t, agent)
	d1.MustDo(t, http.MethodPost, "/upstream/imageinfo", serversJSON(b))
	c1 := harness.XDSClient(t, d1.XDSAddr, "imgprocess", harness.ClientNode{ID: "c1"})
	c2 := harness.XDSClient(t, d2.XDSAddr, "imgprocess", harness.ClientNode{ID: "c2"})
	waitReachesOnly(t, c1, "A")
	waitReachesOnly(t, c2, "A")
	harness.Until(t, 10*time.Second, func() error {
		v1, v2 := ackedVersions(t, d1, "c1"), ackedVersions(t, d2, "c2")
		for typ, v := range v1 {
			if v2[typ] != v {
				return fmt.Errorf("%s: replica 1 serves %s, replica 2 %s", typ, v, v2[typ])
			}
		}
		return nil
	})
}

// 6. Consul stopped and restarted while a client sends RPCs → no failed RPC (no empty push); a change made
// after the restart reaches the client.
func TestConsulOutageKeepsLastGoodState(t *testing.T) {
	agent := consulagent.Start(t, consulagent.Persistent())
	a, b := harness.StartBackend(t, "A"), harness.StartBackend(t, "B")
	register(t, agent, "imgprocess", a, false)
	d := consulDynup(t, agent)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")

	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if _, err := harness.Who(context.Background(), cc); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			sent.Add(1)
		}
	}()
	agent.Stop(t)
	harness.Until(t, 30*time.Second, func() error { // dynup notices: its watches fail
		var s struct {
			Sources []struct {
				Name      string `json:"name"`
				LastError string `json:"last_error"`
			} `json:"sources"`
		}
		d.GetJSON(t, "/sources", &s)
		for _, src := range s.Sources {
			if src.Name == "consul-kv" && src.LastError != "" {
				return nil
			}
		}
		return fmt.Errorf("no source reports an error yet: %+v", s)
	})
	code, body := d.Do(t, http.MethodPost, "/upstream/other", `{"servers":[{"host":"10.0.0.1","port":80}]}`)
	if code != http.StatusServiceUnavailable {
		t.Errorf("write while Consul is down: %d %s, want 503", code, body)
	}
	agent.Start(t)
	register(t, agent, "imgprocess", b, false)
	waitReachesOnly(t, cc, "A", "B")
	cancel()
	<-done
	if failed.Load() != 0 {
		t.Fatalf("%d of %d RPCs failed across the Consul outage; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	if !strings.Contains(d.Logs(), "consul") {
		t.Log("note: dynup logged nothing about Consul")
	}
	t.Logf("%d RPCs across the outage, 0 failed", sent.Load())
}
