package translate

import (
	"slices"
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

// pathRoute sends a path prefix to an upstream, with that upstream's hashing, retries and timeouts.
type pathRoute struct {
	prefix string
	to     *registry.Upstream
}

// buildVirtualHosts gives every upstream a virtual host for its domains, then adds the path routes that
// upstreams declare on other hosts (a gateway host whose /beautify goes to one upstream, /zoom to another).
// A path route on a host that no upstream serves creates a virtual host for that host alone; its other
// paths go to the default upstream (domain "*") if there is one, as they would without the path routes.
func buildVirtualHosts(ups []*registry.Upstream, _ Group) []*virtualHost {
	byDomain := map[string]*virtualHost{}
	var hosts, pathOnly []*virtualHost
	var fallback *registry.Upstream
	for _, u := range ups {
		vh := &virtualHost{name: u.Name, domains: u.EffectiveDomains(), routes: []pathRoute{{prefix: "/", to: u}}}
		hosts = append(hosts, vh)
		for _, d := range vh.domains {
			byDomain[d] = vh
		}
		if slices.Contains(vh.domains, registry.CatchAll) {
			fallback = u
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
				pathOnly = append(pathOnly, vh)
			}
			vh.routes = append(vh.routes, pathRoute{prefix: r.PathPrefix, to: u})
		}
	}
	if fallback != nil {
		for _, vh := range pathOnly {
			vh.routes = append(vh.routes, pathRoute{prefix: "/", to: fallback})
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
// The default upstream's "*" is Envoy's catch-all: it matches only what no other domain matches. Each host
// carries the Lua snippets that apply to it (lua.go).
func buildRouteConfiguration(name string, hosts []*virtualHost, snippets []registry.ActiveSnippet, g Group) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: name}
	for _, vh := range hosts {
		var domains []string
		for _, d := range vh.domains {
			domains = append(domains, d)
			if !strings.HasPrefix(d, "*") {
				domains = append(domains, d+":*")
			}
		}
		evh := envoyVirtualHost(vh, domains, g)
		evh.TypedPerFilterConfig = luaPerHost(vh, snippets)
		rc.VirtualHosts = append(rc.VirtualHosts, evh)
	}
	return rc
}

func envoyVirtualHost(vh *virtualHost, domains []string, g Group) *route.VirtualHost {
	out := &route.VirtualHost{Name: vh.name, Domains: domains}
	for _, r := range vh.routes {
		out.Routes = append(out.Routes, &route.Route{
			Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: r.prefix}},
			Action: &route.Route_Route{Route: routeAction(r.to, g)},
		})
	}
	return out
}
