package translate

import (
	"sort"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/dynup/dynup/registry"
)

// virtualHost is the routing table of one set of domains, before it becomes Envoy's or gRPC's form.
type virtualHost struct {
	name    string
	domains []string
	routes  []pathRoute // longest prefix first; the catch-all "/" last
}

type pathRoute struct {
	prefix  string
	cluster string
}

// buildVirtualHosts gives every upstream a virtual host for its domains, then adds the path routes that
// upstreams declare on other hosts (a gateway host whose /beautify goes to one upstream, /zoom to another).
// A path route on a host that no upstream serves creates a virtual host for that host alone.
func buildVirtualHosts(ups []*registry.Upstream, _ Group) []*virtualHost {
	byDomain := map[string]*virtualHost{}
	var hosts []*virtualHost
	for _, u := range ups {
		vh := &virtualHost{name: u.Name, domains: u.EffectiveDomains(), routes: []pathRoute{{prefix: "/", cluster: u.Name}}}
		hosts = append(hosts, vh)
		for _, d := range vh.domains {
			byDomain[d] = vh
		}
	}
	for _, u := range ups {
		for _, r := range u.Routes {
			host := strings.ToLower(r.Host)
			vh := byDomain[host]
			if vh == nil {
				vh = &virtualHost{name: host, domains: []string{host}}
				byDomain[host] = vh
				hosts = append(hosts, vh)
			}
			vh.routes = append(vh.routes, pathRoute{prefix: r.PathPrefix, cluster: u.Name})
		}
	}
	for _, vh := range hosts {
		sort.SliceStable(vh.routes, func(i, j int) bool { return len(vh.routes[i].prefix) > len(vh.routes[j].prefix) })
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].name < hosts[j].name })
	return hosts
}

// buildRouteConfiguration is Envoy's shared route table. Hosts arrive with any port; the HTTP connection
// manager strips it, and "domain:*" also matches where a port survives (e.g. a route table reused elsewhere).
func buildRouteConfiguration(name string, hosts []*virtualHost) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: name}
	for _, vh := range hosts {
		var domains []string
		for _, d := range vh.domains {
			domains = append(domains, d)
			if !strings.HasPrefix(d, "*") {
				domains = append(domains, d+":*")
			}
		}
		rc.VirtualHosts = append(rc.VirtualHosts, envoyVirtualHost(vh, domains))
	}
	return rc
}

func envoyVirtualHost(vh *virtualHost, domains []string) *route.VirtualHost {
	out := &route.VirtualHost{Name: vh.name, Domains: domains}
	for _, r := range vh.routes {
		out.Routes = append(out.Routes, &route.Route{
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: r.prefix}},
			Action: &route.Route_Route{Route: &route.RouteAction{
				ClusterSpecifier: &route.RouteAction_Cluster{Cluster: r.cluster},
			}},
		})
	}
	return out
}
