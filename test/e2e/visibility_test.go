package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dynup/dynup/test/harness"
)

// 1. A gRPC-Go xDS client connected → listed in /nodes with ACKed versions for every type it reads.
func TestConnectedClientIsListed(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a))
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1", Zone: "a"})
	waitReachesOnly(t, cc, "A")
	acked := ackedVersions(t, f.dynup, "client-1")
	for _, typ := range []string{resource.ListenerType, resource.ClusterType, resource.EndpointType} {
		if acked[typ] == "" {
			t.Errorf("no ACKed version for %s", typ)
		}
	}
	var one struct {
		Streams []struct {
			Group     struct{ Kind, Zone string } `json:"group"`
			UserAgent string                      `json:"user_agent"`
		} `json:"streams"`
	}
	f.dynup.GetJSON(t, "/nodes/client-1", &one)
	if len(one.Streams) != 1 || one.Streams[0].Group.Kind != "grpc" || one.Streams[0].Group.Zone != "a" || !strings.HasPrefix(one.Streams[0].UserAgent, "gRPC Go") {
		t.Fatalf("/nodes/client-1: %+v", one)
	}
}

// 2. A node that NACKs a cluster version: the NACK, its detail and the upstream that changed in that version
// are visible on /nodes/{id} and /upstream/{name}; the rejected version is not resent in a loop.
func TestNackIsAttributedAndNotResent(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	d.MustDo(t, http.MethodPost, "/upstream/good", `{"servers":[{"host":"10.0.0.1","port":80}]}`)
	envoy := harness.DialADS(t, d.XDSAddr, "envoy-1", "")
	envoy.Subscribe(resource.ClusterType)
	first := envoy.Next()
	envoy.Ack(first)

	d.MustDo(t, http.MethodPost, "/upstream/bad", `{"servers":[{"host":"10.0.0.2","port":80}]}`)
	second := envoy.Next()
	if second.TypeUrl != resource.ClusterType || len(second.Resources) != 2 {
		t.Fatalf("expected the clusters good and bad, got %s with %d resources", second.TypeUrl, len(second.Resources))
	}
	envoy.Nack(second, "cluster bad: rejected by the test")

	harness.Until(t, 10*time.Second, func() error {
		var n struct {
			Streams []struct {
				Types map[string]struct {
					Sends    int `json:"sends"`
					LastNack *struct {
						Detail  string `json:"detail"`
						Changes []struct {
							Upstreams []string `json:"upstreams"`
						} `json:"changes"`
					} `json:"last_nack"`
				} `json:"types"`
			} `json:"streams"`
		}
		d.GetJSON(t, "/nodes/envoy-1", &n)
		ts := n.Streams[0].Types[resource.ClusterType]
		if ts.LastNack == nil || ts.LastNack.Detail != "cluster bad: rejected by the test" {
			return fmt.Errorf("no NACK yet: %+v", ts)
		}
		if len(ts.LastNack.Changes) != 1 || strings.Join(ts.LastNack.Changes[0].Upstreams, ",") != "bad" {
			return fmt.Errorf("NACK attributed to %+v, want the change to upstream bad", ts.LastNack.Changes)
		}
		return nil
	})
	var bad struct {
		RejectedBy []struct{ Node, Detail string } `json:"rejected_by"`
	}
	d.GetJSON(t, "/upstream/bad", &bad)
	if len(bad.RejectedBy) != 1 || bad.RejectedBy[0].Node != "envoy-1" {
		t.Fatalf("/upstream/bad rejected_by: %+v", bad.RejectedBy)
	}
	var good struct {
		RejectedBy []any `json:"rejected_by"`
	}
	d.GetJSON(t, "/upstream/good", &good)
	if len(good.RejectedBy) != 0 {
		t.Fatalf("upstream good is blamed: %+v", good.RejectedBy)
	}

	// The next response on the stream must be the next state, not the rejected one again: responses on a
	// stream are in order, so a resend loop would show up before it.
	d.MustDo(t, http.MethodDelete, "/upstream/bad", "")
	third := envoy.Next()
	if third.VersionInfo == second.VersionInfo || len(third.Resources) != 1 {
		t.Fatalf("after the NACK the stream got version %s with %d clusters; want the new state (1 cluster)", third.VersionInfo, len(third.Resources))
	}
	var c cluster.Cluster
	if err := third.Resources[0].UnmarshalTo(&c); err != nil || c.Name != "good" {
		t.Fatalf("third response holds %v (%v)", c.Name, err)
	}
}

// 3. POST …?wait=5s returns after the client ACKed; /changes/{id} shows the counts.
func TestWriteWaitsForRollout(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a))
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")
	ackedVersions(t, f.dynup, "client-1")

	body := f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess?wait=5s", serversJSON(f.b))
	var w struct {
		Change    uint64 `json:"change"`
		RolledOut bool   `json:"rolled_out"`
		Rollout   struct {
			Nodes struct{ Acked, Nacked, Pending int } `json:"nodes"`
		} `json:"rollout"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	if !w.RolledOut || w.Rollout.Nodes.Acked != 1 || w.Rollout.Nodes.Pending != 0 {
		t.Fatalf("?wait answer: %s", body)
	}
	// It returned after the ACK, so the client already routes to B: no polling needed here.
	if got := reached(t, cc, 10); got["B"] != 10 {
		t.Fatalf("after a waited write: %v", got)
	}
	var ch struct {
		Change struct {
			Upstreams  []string                             `json:"upstreams"`
			Nodes      struct{ Acked, Nacked, Pending int } `json:"nodes"`
			FirstAckMs *float64                             `json:"first_ack_ms"`
			LastAckMs  *float64                             `json:"last_ack_ms"`
		} `json:"change"`
	}
	f.dynup.GetJSON(t, fmt.Sprintf("/changes/%d", w.Change), &ch)
	if ch.Change.Nodes.Acked != 1 || ch.Change.FirstAckMs == nil || ch.Change.LastAckMs == nil || ch.Change.Upstreams[0] != "imgprocess" {
		t.Fatalf("/changes/%d: %+v", w.Change, ch.Change)
	}
	t.Logf("change %d reached the client in %.1f ms", w.Change, *ch.Change.LastAckMs)
}

// 4. /metrics parses with the Prometheus text parser and the counters move as expected.
func TestMetrics(t *testing.T) {
	f := setup(t)
	scrape := func() map[string]*dto.MetricFamily { return scrapeMetrics(t, f.dynup) }
	before := scrape()
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a))
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")
	ackedVersions(t, f.dynup, "client-1")
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess?wait=5s", serversJSON(f.b))
	after := scrape()
	for _, name := range []string{"dynup_xds_responses_total", "dynup_xds_acks_total", "dynup_propagation_seconds", "dynup_translation_seconds"} {
		if metricSum(after, name) <= metricSum(before, name) {
			t.Errorf("%s did not move: %v → %v", name, metricSum(before, name), metricSum(after, name))
		}
	}
	if got := metricSum(after, "dynup_xds_streams"); got != 1 {
		t.Errorf("dynup_xds_streams = %v, want 1", got)
	}
	if metricSum(after, "dynup_xds_nacks_total") != 0 {
		t.Error("NACKs counted where none happened")
	}
	if metricSum(after, "process_resident_memory_bytes") == 0 {
		t.Error("process metrics missing")
	}
}

func scrapeMetrics(t *testing.T, d *harness.Dynup) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(d.MustDo(t, http.MethodGet, "/metrics", "")))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// metricSum adds up every series of a family whose labels include want: counters and gauges by value,
// histograms by sample count.
func metricSum(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	var total float64
	fam := fams[name]
	if fam == nil {
		return 0
	}
series:
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}
