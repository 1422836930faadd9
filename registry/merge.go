package registry

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// Config is what users own: upstream definitions written through the admin API, the file or Consul KV.
type Config struct {
	Upstreams map[string]Upstream `json:"upstreams"`
	// Snippets are the Lua snippets by name (see snippet.go). Their versions are never modified in place:
	// a change copies the slice, so a clone may share them.
	Snippets map[string]Snippet `json:"snippets,omitempty"`
}

// Discovered is what service discovery found, by service name.
type Discovered map[string]DiscoveredService

// DiscoveredService is one discovered service: its servers (each with its Source) and the Host names it
// asked for (Consul service meta dynup-domains), used when its upstream is not configured with domains.
type DiscoveredService struct {
	Servers []Server `json:"servers"`
	Domains []string `json:"domains,omitempty"`
}

// merge builds the upstream list from configuration and discovery.
//
// Precedence (documented in the README): a configured upstream owns its options and domains; its servers are
// its static servers plus the discovered servers of the service with the same name, a static server winning
// over a discovered one at the same address. A service with no configuration becomes an upstream with default
// options. A discovered upstream whose domain is already served by a configured one is dropped with a
// warning, because Envoy rejects a route table in which two virtual hosts share a domain.
//
// contested names the upstreams on either side of a domain conflict: the ones dropped and the ones that
// kept the domain.
func merge(cfg Config, disc Discovered, configSource string) (kept []Upstream, warnings []Warning, contested map[string]bool) {
	names := map[string]bool{}
	for n := range cfg.Upstreams {
		names[n] = true
	}
	for n := range disc {
		names[n] = true
	}
	var out []Upstream
	for n := range names {
		u, configured := cfg.Upstreams[n]
		out = append(out, mergeUpstream(n, u, configured, disc[n], configSource))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })

	// Configured upstreams claim their domains first, so discovery can never take a domain away.
	owner := map[string]string{}
	contested = map[string]bool{}
	claim := func(u *Upstream) bool {
		for _, d := range u.EffectiveDomains() {
			if o, taken := owner[d]; taken && o != u.Name {
				contested[u.Name], contested[o] = true, true
				warnings = append(warnings, Warning{Object: "upstream/" + u.Name,
					Msg: fmt.Sprintf("dropped: domain %q is already served by upstream %q", d, o)})
				return false
			}
		}
		for _, d := range u.EffectiveDomains() {
			owner[d] = u.Name
		}
		return true
	}
	kept = make([]Upstream, 0, len(out))
	for pass := 0; pass < 2; pass++ {
		for i := range out {
			_, configured := cfg.Upstreams[out[i].Name]
			if configured == (pass == 0) && claim(&out[i]) {
				kept = append(kept, out[i])
			}
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	return kept, warnings, contested
}

// mergeUpstream is one upstream as served: its definition (if configured) with what discovery found.
func mergeUpstream(name string, u Upstream, configured bool, disc DiscoveredService, configSource string) Upstream {
	if !configured {
		u = Upstream{Name: name}
	}
	if len(u.Domains) == 0 {
		u.Domains = disc.Domains
	}
	u.Servers = mergeServers(u.Servers, disc.Servers, configSource)
	return u
}

func mergeServers(static, discovered []Server, configSource string) []Server {
	out := make([]Server, 0, len(static)+len(discovered))
	seen := map[netip.AddrPort]bool{}
	for _, s := range static {
		if s.Source == "" {
			s.Source = configSource
		}
		out = append(out, s)
		seen[addrPort(s)] = true
	}
	for _, s := range discovered {
		if !seen[addrPort(s)] {
			out = append(out, s)
		}
	}
	return out
}

func addrPort(s Server) netip.AddrPort {
	a, _ := netip.ParseAddr(s.Host)
	return netip.AddrPortFrom(a, uint16(s.Port))
}

// domainConflict reports the first domain of u that another configured upstream already serves.
func domainConflict(cfg Config, u *Upstream) error {
	mine := u.EffectiveDomains()
	for name, other := range cfg.Upstreams {
		if name == u.Name {
			continue
		}
		for _, d := range other.EffectiveDomains() {
			if slices.Contains(mine, d) {
				return &ConflictError{Msg: fmt.Sprintf("domain %q is already served by upstream %q", d, name)}
			}
		}
	}
	return nil
}
