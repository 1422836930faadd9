package translate

import (
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Kind is the kind of xDS client: they read different resources.
type Kind string

const (
	// KindEnvoy is an Envoy proxy: one HTTP listener, a shared route table, Lua.
	KindEnvoy Kind = "envoy"
	// KindGRPC is a proxyless gRPC client: one API listener per target, nothing gRPC would reject.
	KindGRPC Kind = "grpc"
)

// Group is the set of nodes that receive identical resources. Nodes of one group share one snapshot, so the
// translation and encoding happen once per group, not once per node.
type Group struct {
	Kind Kind   `json:"kind"`
	Zone string `json:"zone,omitempty"` // the node's locality zone: its own zone's servers come first
}

func (g Group) String() string {
	if g.Zone == "" {
		return string(g.Kind)
	}
	return string(g.Kind) + "/" + g.Zone
}

// KindMetadataKey lets a node state its kind in its bootstrap metadata, overriding the user agent.
const KindMetadataKey = "dynup.kind"

// GroupOf classifies a node by what it says about itself: metadata dynup.kind, else the user agent
// (gRPC libraries send "gRPC Go", "gRPC Java", ...; Envoy sends "envoy").
func GroupOf(node *core.Node) Group {
	g := Group{Kind: KindEnvoy, Zone: node.GetLocality().GetZone()}
	if v := node.GetMetadata().GetFields()[KindMetadataKey].GetStringValue(); v != "" {
		if Kind(v) == KindGRPC {
			g.Kind = KindGRPC
		}
		return g
	}
	if strings.HasPrefix(strings.ToLower(node.GetUserAgentName()), "grpc") {
		g.Kind = KindGRPC
	}
	return g
}
