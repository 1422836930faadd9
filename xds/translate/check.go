package translate

import (
	"fmt"
	"sync"

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
	for _, fd := range anyFields(m.Descriptor()) {
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		var err error
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len() && err == nil; i++ {
				err = validatePacked(v.List().Get(i).Message())
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = validatePacked(mv.Message())
				return err == nil
			})
		default:
			err = validatePacked(v.Message())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// anyFieldsByType caches, by message type, the fields through which a message of that type can hold an
// Any at some depth. Walking every field of 10,000 clusters and assignments by reflection was more than
// half of a full translation; looking only at these fields makes the walk touch a few fields per message
// (most of a config, such as addresses, endpoints and matchers, cannot hold an Any).
var anyFieldsByType sync.Map // protoreflect.MessageDescriptor → []protoreflect.FieldDescriptor

func anyFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if v, ok := anyFieldsByType.Load(md); ok {
		return v.([]protoreflect.FieldDescriptor)
	}
	reach := map[protoreflect.FullName]bool{}
	var out []protoreflect.FieldDescriptor
	for i, fields := 0, md.Fields(); i < fields.Len(); i++ {
		if sub := fieldMessage(fields.Get(i)); sub != nil && reachAny(sub, reach, map[protoreflect.FullName]bool{}) {
			out = append(out, fields.Get(i))
		}
	}
	anyFieldsByType.Store(md, out)
	return out
}

func fieldMessage(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		return fd.MapValue().Message()
	}
	return fd.Message()
}

// reachAny finds whether a message of type md can hold an Any. A type met again on the path (recursive
// types such as google.protobuf.Value) counts as able to: true may be too cautious, which only costs a
// walk, while false is exact.
func reachAny(md protoreflect.MessageDescriptor, known, onPath map[protoreflect.FullName]bool) bool {
	name := md.FullName()
	if v, ok := known[name]; ok {
		return v
	}
	if name == "google.protobuf.Any" || onPath[name] {
		return true
	}
	onPath[name] = true
	defer delete(onPath, name)
	found := false
	for i, fields := 0, md.Fields(); i < fields.Len() && !found; i++ {
		if sub := fieldMessage(fields.Get(i)); sub != nil {
			found = reachAny(sub, known, onPath)
		}
	}
	known[name] = found
	return found
}

// check validates every listener and route and every reference between resources: a listener's route
// table, a route's cluster, a cluster's endpoints. Clusters and endpoints must be validated already
// (Translate does them one by one, as it builds them). A set that fails must not be published.
func check(r *Resources) error {
	clusters := make(map[string]bool, len(r.Clusters))
	for _, c := range r.Clusters {
		clusters[c.Name] = true
	}
	endpoints := make(map[string]bool, len(r.Endpoints))
	for _, e := range r.Endpoints {
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
