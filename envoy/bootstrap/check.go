package bootstrap

import (
	"errors"
	"fmt"
	"slices"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every typed_config in the bootstrap must resolve: protojson looks Any types up in the global registry,
	// which only knows the packages linked in.
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Parse reads a bootstrap as Envoy does: YAML into the v3 Bootstrap proto, unknown fields and unknown
// typed_config types being errors.
func Parse(yamlText []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(yamlText)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("bootstrap proto: %w", err)
	}
	return b, nil
}

// Check reports what would make b useless with dynup: a constraint Envoy's proto validation rejects
// (inside typed_config too), ADS or LRS naming a cluster that is not the static one, or a resource type
// that does not come from ADS.
func Check(b *bootstrapv3.Bootstrap) error {
	if err := validateDeep(b); err != nil {
		return err
	}
	if b.GetNode().GetId() == "" || b.GetNode().GetCluster() == "" {
		return errors.New("node.id and node.cluster are required: Envoy refuses ADS without them")
	}
	static := map[string]bool{}
	for _, c := range b.GetStaticResources().GetClusters() {
		static[c.GetName()] = true
		if err := checkTLS(c.GetTransportSocket()); err != nil {
			return fmt.Errorf("cluster %q transport_socket: %w", c.GetName(), err)
		}
	}
	dr := b.GetDynamicResources()
	ads := dr.GetAdsConfig()
	if t := ads.GetApiType(); t != core.ApiConfigSource_GRPC && t != core.ApiConfigSource_DELTA_GRPC {
		return fmt.Errorf("ads_config.api_type is %v: want GRPC or DELTA_GRPC", t)
	}
	if err := checkSource("ads_config", ads, static); err != nil {
		return err
	}
	lrs := b.GetClusterManager().GetLoadStatsConfig()
	if lrs.GetApiType() != core.ApiConfigSource_GRPC {
		return fmt.Errorf("cluster_manager.load_stats_config.api_type is %v: LRS is GRPC only", lrs.GetApiType())
	}
	if err := checkSource("cluster_manager.load_stats_config", lrs, static); err != nil {
		return err
	}
	for name, cs := range map[string]*core.ConfigSource{"lds_config": dr.GetLdsConfig(), "cds_config": dr.GetCdsConfig()} {
		if cs.GetAds() == nil || cs.GetResourceApiVersion() != core.ApiVersion_V3 {
			return fmt.Errorf("dynamic_resources.%s: want ads: {} and resource_api_version: V3", name)
		}
	}
	if len(b.GetStaticResources().GetListeners()) > 0 {
		return errors.New("static listeners: every listener comes from dynup over ADS")
	}
	return nil
}

// checkSource requires V3 and gRPC services that all name a static cluster.
func checkSource(path string, s *core.ApiConfigSource, static map[string]bool) error {
	if s.GetTransportApiVersion() != core.ApiVersion_V3 {
		return fmt.Errorf("%s.transport_api_version: want V3", path)
	}
	if len(s.GetGrpcServices()) == 0 {
		return fmt.Errorf("%s has no grpc_services", path)
	}
	for _, g := range s.GetGrpcServices() {
		name := g.GetEnvoyGrpc().GetClusterName()
		if !static[name] {
			return fmt.Errorf("%s names cluster %q, which is not a static cluster", path, name)
		}
	}
	return nil
}

// checkTLS accepts no transport socket (plaintext) or a TLS one that can reach dynup and verifies it:
// h2 by ALPN (dynup's gRPC server refuses TLS without it), a CA to check dynup's certificate against, and a
// name that certificate must have.
func checkTLS(ts *core.TransportSocket) error {
	if ts == nil {
		return nil
	}
	var tc tlsv3.UpstreamTlsContext
	if ts.GetName() != "envoy.transport_sockets.tls" || ts.GetTypedConfig().UnmarshalTo(&tc) != nil {
		return fmt.Errorf("%s (%s): want envoy.transport_sockets.tls with an UpstreamTlsContext", ts.GetName(), ts.GetTypedConfig().GetTypeUrl())
	}
	common := tc.GetCommonTlsContext()
	if !slices.Contains(common.GetAlpnProtocols(), "h2") {
		return errors.New("alpn_protocols lacks h2: dynup's gRPC server refuses TLS connections that do not negotiate HTTP/2")
	}
	vc := common.GetValidationContext()
	if vc.GetTrustedCa() == nil {
		return errors.New("no validation_context.trusted_ca: Envoy would not verify dynup's certificate")
	}
	if len(vc.GetMatchTypedSubjectAltNames()) == 0 {
		return errors.New("no validation_context.match_typed_subject_alt_names: any certificate of the CA would pass for dynup")
	}
	return nil
}

// validateDeep runs m's ValidateAll (which checks nested messages too) and then does the same for every
// message packed in an Any below m, which ValidateAll does not look into.
func validateDeep(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	return eachAny(m.ProtoReflect(), func(a *anypb.Any) error {
		inner, err := a.UnmarshalNew()
		if err == nil {
			err = validateDeep(inner)
		}
		if err != nil {
			return fmt.Errorf("typed_config %s: %w", a.GetTypeUrl(), err)
		}
		return nil
	})
}

// eachAny calls fn for every Any directly below m, not descending into the Anys themselves.
func eachAny(m protoreflect.Message, fn func(*anypb.Any) error) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		return fn(a)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = eachAny(mv.Message(), fn)
					return err == nil
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len() && err == nil; i++ {
					err = eachAny(v.List().Get(i).Message(), fn)
				}
			}
		case fd.Message() != nil:
			err = eachAny(v.Message(), fn)
		}
		return err == nil
	})
	return err
}
