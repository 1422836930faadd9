package translate

import (
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validator is implemented by every generated Envoy message (protoc-gen-validate rules).
type validator interface{ ValidateAll() error }

// validateAll runs ValidateAll on each message and on every Any packed inside it (typed configs, protocol
// options, retry predicates), which ValidateAll itself does not open.
func validateAll(msgs ...validator) error {
	for _, m := range msgs {
		if err := m.ValidateAll(); err != nil {
			return err
		}
		if pm, ok := m.(proto.Message); ok {
			if err := validatePacked(pm.ProtoReflect()); err != nil {
				return err
			}
		}
	}
	return nil
}

// validatePacked walks a message and validates each Any's content with its own rules, recursively. An
// Any of a type this binary does not know is an error: nothing dynup builds should be opaque to it.
func validatePacked(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
		}
		if v, ok := inner.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
			}
		}
		return validatePacked(inner.ProtoReflect())
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := 0; i < v.List().Len() && err == nil; i++ {
				err = validatePacked(v.List().Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = validatePacked(mv.Message())
					return err == nil
				})
			}
		default:
			err = validatePacked(v.Message())
		}
		return err == nil
	})
	return err
}

// Check validates every resource and every reference between them: a listener's route table, a route's
// cluster, a cluster's endpoints. A set that fails must not be published.
func Check(r *Resources) error {
	clusters := map[string]bool{}
	for _, c := range r.Clusters {
		if err := validateAll(c); err != nil {
			return fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		clusters[c.Name] = true
	}
	endpoints := map[string]bool{}
	for _, e := range r.Endpoints {
		if err := validateAll(e); err != nil {
			return fmt.Errorf("endpoints %q: %w", e.ClusterName, err)
		}
		if !clusters[e.ClusterName] {
			return fmt.Errorf("endpoints %q: no such cluster", e.ClusterName)
		}
		endpoints[e.ClusterName] = true
	}
	for name := range clusters {
		if !endpoints[name] {
			return fmt.Errorf("cluster %q: no endpoints resource", name)
		}
	}
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		if err := checkRouteConfiguration(rc, clusters); err != nil {
			return err
		}
		routes[rc.Name] = true
	}
	for _, l := range r.Listeners {
		if err := validateAll(l); err != nil {
			return fmt.Errorf("listener %q: %w", l.Name, err)
		}
		for _, m := range listenerManagers(l) {
			mgr := &hcm.HttpConnectionManager{}
			if err := m.UnmarshalTo(mgr); err != nil {
				return fmt.Errorf("listener %q: %w", l.Name, err)
			}
			if err := mgr.ValidateAll(); err != nil {
				return fmt.Errorf("listener %q: connection manager: %w", l.Name, err)
			}
			if rds := mgr.GetRds(); rds != nil && !routes[rds.RouteConfigName] {
				return fmt.Errorf("listener %q: route table %q does not exist", l.Name, rds.RouteConfigName)
			}
			if rc := mgr.GetRouteConfig(); rc != nil {
				if err := checkRouteConfiguration(rc, clusters); err != nil {
					return fmt.Errorf("listener %q: %w", l.Name, err)
				}
			}
		}
	}
	return checkPerFilterConfig(r)
}

func checkRouteConfiguration(rc *route.RouteConfiguration, clusters map[string]bool) error {
	if err := validateAll(rc); err != nil {
		return fmt.Errorf("route table %q: %w", rc.Name, err)
	}
	domains := map[string]string{}
	for _, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			// Envoy rejects the whole table when two virtual hosts share a domain.
			if other, dup := domains[d]; dup {
				return fmt.Errorf("route table %q: domain %q is in virtual hosts %q and %q", rc.Name, d, other, vh.Name)
			}
			domains[d] = vh.Name
		}
		for _, r := range vh.Routes {
			if c := r.GetRoute().GetCluster(); c != "" && !clusters[c] {
				return fmt.Errorf("route table %q: virtual host %q routes to missing cluster %q", rc.Name, vh.Name, c)
			}
		}
	}
	return nil
}

// listenerManagers returns the HTTP connection managers of a listener (API listener or filter chains).
func listenerManagers(l *listener.Listener) []*anypb.Any {
	var out []*anypb.Any
	if a := l.GetApiListener().GetApiListener(); a != nil {
		out = append(out, a)
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			if tc := f.GetTypedConfig(); tc != nil && tc.MessageIs(&hcm.HttpConnectionManager{}) {
				out = append(out, tc)
			}
		}
	}
	return out
}
