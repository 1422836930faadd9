package translate

import (
	"fmt"
	"strings"

	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/yuin/gopher-lua/parse"
)

// checkPerFilterConfig verifies what ValidateAll cannot see in per-host filter configuration: that each
// virtual host configures only filters that the listeners reading its route table have (otherwise Envoy
// silently ignores it, and a host would run without its snippets), and that every inline Lua program
// parses (Envoy compiles it when the route table arrives and rejects the whole table if it does not).
func checkPerFilterConfig(r *Resources) error {
	filters := map[string]map[string]bool{} // route table → HTTP filter names of the listeners using it
	for _, l := range r.Listeners {
		for _, m := range listenerManagers(l) {
			mgr := &hcm.HttpConnectionManager{}
			if err := m.UnmarshalTo(mgr); err != nil {
				return fmt.Errorf("listener %q: %w", l.Name, err)
			}
			name := mgr.GetRds().GetRouteConfigName()
			if name == "" {
				continue
			}
			if filters[name] == nil {
				filters[name] = map[string]bool{}
			}
			for _, f := range mgr.HttpFilters {
				filters[name][f.Name] = true
			}
		}
	}
	for _, rc := range r.Routes {
		for _, vh := range rc.VirtualHosts {
			for name, cfg := range vh.TypedPerFilterConfig {
				if have, used := filters[rc.Name]; used && !have[name] {
					return fmt.Errorf("route table %q: virtual host %q configures filter %q, which its listener does not have", rc.Name, vh.Name, name)
				}
				if name != LuaFilterName {
					continue
				}
				perRoute := &luav3.LuaPerRoute{}
				if err := cfg.UnmarshalTo(perRoute); err != nil {
					return fmt.Errorf("route table %q: virtual host %q: %w", rc.Name, vh.Name, err)
				}
				if src := perRoute.GetSourceCode().GetInlineString(); src != "" {
					if _, err := parse.Parse(strings.NewReader(src), vh.Name); err != nil {
						return fmt.Errorf("route table %q: virtual host %q: generated Lua does not parse: %w", rc.Name, vh.Name, err)
					}
				}
			}
		}
	}
	return nil
}
