// Package translate turns a registry.State into Envoy resources for one node group. It is a pure function:
// no I/O, no clock, no randomness, so the same state gives byte-identical resources everywhere.
package translate

import (
	"fmt"
	"sort"

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
	var served []*registry.Upstream
	for i := range st.Upstreams {
		u := &st.Upstreams[i]
		c, cla := buildCluster(u, g), buildEndpoints(u, g)
		if err := validateAll(c, cla); err != nil {
			res.Warnings = append(res.Warnings, registry.Warning{Object: "upstream/" + u.Name,
				Msg: fmt.Sprintf("left out of %s resources: %v", g, err)})
			continue
		}
		res.Clusters = append(res.Clusters, c)
		res.Endpoints = append(res.Endpoints, cla)
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
	if err := Check(res); err != nil {
		return nil, err
	}
	return res, nil
}
