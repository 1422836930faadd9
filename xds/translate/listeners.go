package translate

import (
	"strings"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// buildHTTPListener is the one listener every Envoy node gets: the HTTP connection manager reading the
// shared route table over ADS, so upstream changes never touch the listener (no drain, no reconnects).
func buildHTTPListener(opts Options) *listener.Listener {
	manager := &hcm.HttpConnectionManager{
		StatPrefix: "ingress_http",
		CodecType:  hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: HTTPRouteName,
		}},
		// Lua before the router, off unless a virtual host turns it on (lua.go).
		HttpFilters: []*hcm.HttpFilter{luaFilter(), routerFilter()},
		// Slardar matched $host without its port.
		StripPortMode: &hcm.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		// nginx's X-Forwarded-For behaviour: Envoy is the edge and appends the client address.
		UseRemoteAddress: wrapperspb.Bool(true),
		ServerName:       "dynup",
		LocalReplyConfig: unknownHostReply(),
	}
	return &listener.Listener{
		Name:    HTTPListenerName,
		Address: socketAddress(opts.HTTPListenerAddress, opts.HTTPListenerPort),
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(manager)},
			}},
		}},
	}
}

// unknownHostReply keeps Envoy's 404 for a Host no upstream serves, with a body that names the host, so a
// typo in a Host header is obvious from curl.
func unknownHostReply() *hcm.LocalReplyConfig {
	return &hcm.LocalReplyConfig{Mappers: []*hcm.ResponseMapper{{
		Filter: &accesslog.AccessLogFilter{FilterSpecifier: &accesslog.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslog.ResponseFlagFilter{Flags: []string{"NR"}},
		}},
		BodyFormatOverride: &core.SubstitutionFormatString{Format: &core.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &core.DataSource{Specifier: &core.DataSource_InlineString{
				InlineString: "dynup: no upstream serves host %REQ(:AUTHORITY)%\n",
			}},
		}},
	}}}
}

// buildAPIListeners gives proxyless gRPC clients one listener per host name, named after it, so that a
// channel to xds:///<host> resolves. The route table is inline: a gRPC client then reads one resource per
// target, and a change to one upstream touches only its own listener. Wildcard domains (and the default
// upstream's "*") cannot be targets: a gRPC client asks for its target's listener by exact name.
func buildAPIListeners(hosts []*virtualHost, g Group) []*listener.Listener {
	var out []*listener.Listener
	for _, vh := range hosts {
		for _, d := range vh.domains {
			if strings.Contains(d, "*") {
				continue
			}
			manager := &hcm.HttpConnectionManager{
				StatPrefix: d,
				RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
					Name:         d,
					VirtualHosts: []*route.VirtualHost{envoyVirtualHost(vh, []string{d}, g)},
				}},
				HttpFilters: []*hcm.HttpFilter{routerFilter()},
			}
			out = append(out, &listener.Listener{
				Name:        d,
				ApiListener: &listener.ApiListener{ApiListener: mustAny(manager)},
			})
		}
	}
	return out
}

func routerFilter() *hcm.HttpFilter {
	return &hcm.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})},
	}
}

// mustAny wraps a message we built ourselves; marshalling it can only fail on a programming error.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("translate: " + err.Error())
	}
	return a
}
