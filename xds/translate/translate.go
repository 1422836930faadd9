// Package translate turns a registry.State into Envoy resources for one node group. It is a pure function:
// no I/O, no clock, no randomness, so the same state gives byte-identical resources everywhere.
package translate

import (
	"fmt"
	"runtime"
	"sort"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/dynup/dynup/registry"
)

// Options are the fleet-wide settings translation needs besides the state.
type Options struct {
	// HTTPListenerAddress and HTTPListenerPort are where Envoy nodes accept traffic.
	HTTPListenerAddress string `json:"http_listener_address"`
	HTTPListenerPort    uint32 `json:"http_listener_port"`
}

// DefaultOptions are the settings of `go run ./cmd/dynup`.
func DefaultOptions() Options {
	return Options{HTTPListenerAddress: "0.0.0.0", HTTPListenerPort: 10000}
}

// Names of the fleet-wide resources Envoy nodes get.
const (
	HTTPListenerName = "dynup_http"
	HTTPRouteName    = "dynup_http"
)

// Resources is the translation of one state for one group: what the publisher checks and serves.
type Resources struct {
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	// Warnings name upstreams that were left out because their resources were invalid.
	Warnings []registry.Warning
}

// Translate builds the resources of st for group g. An upstream whose own resources fail validation is left
// out with a warning; an error means the whole set is unusable and the last good one must stay.
func Translate(st *registry.State, g Group, opts Options) (*Resources, error) {
	res := &Resources{}
	built := buildUpstreams(st.Upstreams, g)
	var served []*registry.Upstream
	for i := range st.Upstreams {
		u, b := &st.Upstreams[i], built[i]
		if b.err != nil {
			res.Warnings = append(res.Warnings, registry.Warning{Object: "upstream/" + u.Name,
				Msg: fmt.Sprintf("left out of %s resources: %v", g, b.err)})
			continue
		}
		res.Clusters = append(res.Clusters, b.cluster)
		res.Endpoints = append(res.Endpoints, b.endpoints)
		served = append(served, u)
	}
	hosts := buildVirtualHosts(served, g)
	switch g.Kind {
	case KindGRPC: // never Lua: gRPC clients have no such filter and would reject the configuration
		res.Listeners = buildAPIListeners(hosts, g)
	default:
		res.Routes = []*route.RouteConfiguration{buildRouteConfiguration(HTTPRouteName, hosts, st.Snippets, g)}
		res.Listeners = []*listener.Listener{buildHTTPListener(opts)}
	}
	sort.Slice(res.Listeners, func(i, j int) bool { return res.Listeners[i].Name < res.Listeners[j].Name })
	if err := check(res); err != nil { // clusters and endpoints were validated one by one above
		return nil, err
	}
	return res, nil
}

// upstreamResources is one upstream's cluster and endpoints, validated, or why they are invalid.
type upstreamResources struct {
	cluster   *cluster.Cluster
	endpoints *endpoint.ClusterLoadAssignment
	err       error
}

// buildUpstreams builds and validates each upstream's own resources. Each depends on its upstream and
// the group alone, so a long list is split over every CPU: building and validating 10,000 upstreams is
// most of a full translation.
func buildUpstreams(ups []registry.Upstream, g Group) []upstreamResources {
	out := make([]upstreamResources, len(ups))
	one := func(i int) {
		c, cla := buildCluster(&ups[i], g), buildEndpoints(&ups[i], g)
		out[i] = upstreamResources{cluster: c, endpoints: cla, err: validateAll(c, cla)}
	}
	workers := min(runtime.GOMAXPROCS(0), len(ups)/256+1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ups); i += workers {
				one(i)
			}
		}()
	}
	wg.Wait()
	return out
}
