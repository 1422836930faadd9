package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// markerBase is where change markers start: change k sets one server's port to markerBase+k, so a stream
// knows which changes it holds by looking at the ports it was sent. Seeded servers use lower ports.
const markerBase = 20000

// envoy is one simulated Envoy: one ADS stream on its own connection, subscribing as Envoy does (clusters
// and listeners by wildcard, then the endpoints of every cluster and the route tables the listeners name),
// decoding every resource and ACKing every response.
type envoy struct {
	id    int
	node  *core.Node
	delta bool
	// reached is called when the stream ACKs a response that holds the change generations after from, up
	// to gen.
	reached func(e *envoy, from, gen int64, at time.Time)

	gen       atomic.Int64 // newest change marker ACKed
	served    chan struct{}
	served1   sync.Once
	responses atomic.Int64
}

// newEnvoy describes node i: its zone and kind decide its group.
func newEnvoy(i int, zone, kind string, delta bool, reached func(*envoy, int64, int64, time.Time)) *envoy {
	node := &core.Node{Id: fmt.Sprintf("load-%05d", i), Cluster: "load", UserAgentName: "envoy",
		UserAgentVersionType: &core.Node_UserAgentVersion{UserAgentVersion: "load"}}
	if zone != "" {
		node.Locality = &core.Locality{Zone: zone}
	}
	if kind != "" && kind != "envoy" {
		node.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"dynup.kind": structpb.NewStringValue(kind)}}
	}
	return &envoy{id: i, node: node, delta: delta, reached: reached, served: make(chan struct{})}
}

// dial opens the node's connection. Like Envoy, each node has its own.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithReadBufferSize(32<<10), grpc.WithWriteBufferSize(8<<10), grpc.WithSharedWriteBuffer(true),
		// Envoy's gRPC client has fixed windows, without gRPC-Go's bandwidth-estimating pings.
		grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
}

// run holds one stream until ctx ends or the stream fails.
func (e *envoy) run(ctx context.Context, cc *grpc.ClientConn) error {
	client := discovery.NewAggregatedDiscoveryServiceClient(cc)
	if e.delta {
		stream, err := client.DeltaAggregatedResources(ctx)
		if err != nil {
			return err
		}
		return e.runDelta(stream)
	}
	stream, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	return e.runSotw(stream)
}

// typeState is what a stream knows of one type.
type typeState struct {
	version, nonce string
	acked          bool
	names          []string // what the stream subscribes to, for EDS and RDS
}

// subscriptions follows which endpoint assignments and route tables the node needs.
type subscriptions struct {
	types map[string]*typeState
	// delta only: the resources held, by type and name, and their decoded dependencies
	held map[string]map[string][]string
}

func newSubscriptions() *subscriptions {
	s := &subscriptions{types: map[string]*typeState{}, held: map[string]map[string][]string{}}
	for _, t := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		s.types[t] = &typeState{}
	}
	return s
}

// complete reports whether every type the node needs has been ACKed.
func (s *subscriptions) complete() bool {
	if !s.types[resource.ClusterType].acked || !s.types[resource.ListenerType].acked {
		return false
	}
	if len(s.types[resource.EndpointType].names) > 0 && !s.types[resource.EndpointType].acked {
		return false
	}
	return len(s.types[resource.RouteType].names) == 0 || s.types[resource.RouteType].acked
}

func (e *envoy) runSotw(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) error {
	subs := newSubscriptions()
	send := func(typeURL string, names []string) error {
		ts := subs.types[typeURL]
		return stream.Send(&discovery.DiscoveryRequest{Node: e.node, TypeUrl: typeURL, VersionInfo: ts.version,
			ResponseNonce: ts.nonce, ResourceNames: names})
	}
	if err := send(resource.ClusterType, nil); err != nil {
		return err
	}
	if err := send(resource.ListenerType, nil); err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		e.responses.Add(1)
		ts := subs.types[resp.TypeUrl]
		if ts == nil {
			return fmt.Errorf("response of unexpected type %s", resp.TypeUrl)
		}
		deps, gen, err := decodeAll(resp.TypeUrl, resp.Resources)
		if err != nil {
			return err
		}
		ts.version, ts.nonce = resp.VersionInfo, resp.Nonce
		// The ACK names what the node subscribes to, as Envoy's does.
		if err := send(resp.TypeUrl, ts.names); err != nil {
			return err
		}
		at := time.Now()
		ts.acked = true
		switch resp.TypeUrl {
		case resource.ClusterType, resource.ListenerType: // sent whole: their dependencies are all there is
			dep := subs.types[dependent(resp.TypeUrl)]
			if !slices.Equal(dep.names, deps) {
				dep.names = deps
				if err := send(dependent(resp.TypeUrl), deps); err != nil {
					return err
				}
			}
		case resource.EndpointType:
			e.advance(gen, at)
		}
		if subs.complete() {
			e.served1.Do(func() { close(e.served) })
		}
	}
}

func (e *envoy) runDelta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) error {
	subs := newSubscriptions()
	for _, t := range []string{resource.ClusterType, resource.ListenerType} {
		if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: e.node, TypeUrl: t}); err != nil {
			return err
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		e.responses.Add(1)
		ts := subs.types[resp.TypeUrl]
		if ts == nil {
			return fmt.Errorf("response of unexpected type %s", resp.TypeUrl)
		}
		held := subs.held[resp.TypeUrl]
		if held == nil {
			held = map[string][]string{}
			subs.held[resp.TypeUrl] = held
		}
		var maxGen int64
		for _, r := range resp.Resources {
			deps, gen, err := decode(resp.TypeUrl, r.Resource)
			if err != nil {
				return err
			}
			held[r.Name] = deps
			maxGen = max(maxGen, gen)
		}
		for _, name := range resp.RemovedResources {
			delete(held, name)
		}
		if err := stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}); err != nil {
			return err
		}
		at := time.Now()
		ts.acked = true
		switch resp.TypeUrl {
		case resource.ClusterType, resource.ListenerType:
			var deps []string
			for _, d := range held {
				deps = append(deps, d...)
			}
			slices.Sort(deps)
			deps = slices.Compact(deps)
			dep := subs.types[dependent(resp.TypeUrl)]
			added, removed := diff(dep.names, deps)
			if len(added)+len(removed) > 0 {
				dep.names = deps
				if err := stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: dependent(resp.TypeUrl),
					ResourceNamesSubscribe: added, ResourceNamesUnsubscribe: removed}); err != nil {
					return err
				}
			}
		case resource.EndpointType:
			e.advance(maxGen, at)
		}
		if subs.complete() {
			e.served1.Do(func() { close(e.served) })
		}
	}
}

// advance records that the stream ACKed changes up to gen.
func (e *envoy) advance(gen int64, at time.Time) {
	for {
		old := e.gen.Load()
		if gen <= old {
			return
		}
		if e.gen.CompareAndSwap(old, gen) {
			e.reached(e, old, gen, at)
			return
		}
	}
}

// dependent is the type a node subscribes to by name after reading typeURL.
func dependent(typeURL string) string {
	if typeURL == resource.ClusterType {
		return resource.EndpointType
	}
	return resource.RouteType
}

func diff(old, next []string) (added, removed []string) {
	for _, n := range next {
		if _, found := slices.BinarySearch(old, n); !found {
			added = append(added, n)
		}
	}
	for _, n := range old {
		if _, found := slices.BinarySearch(next, n); !found {
			removed = append(removed, n)
		}
	}
	return added, removed
}

// decodeAll decodes a state-of-the-world response: the sorted names it depends on and the newest marker.
func decodeAll(typeURL string, list []*anypb.Any) ([]string, int64, error) {
	var deps []string
	var gen int64
	for _, a := range list {
		d, g, err := decode(typeURL, a)
		if err != nil {
			return nil, 0, err
		}
		deps = append(deps, d...)
		gen = max(gen, g)
	}
	slices.Sort(deps)
	return slices.Compact(deps), gen, nil
}

// lightDecode makes decode read only what the simulated node needs (names, endpoint ports) straight from
// the wire format instead of building whole messages: on one machine, decoding every resource of
// thousands of streams costs the tool several times dynup's CPU (see -decode). Set once, before any
// stream starts.
var lightDecode bool

// decode decodes one resource as Envoy must before using it, and returns what the node must subscribe to
// because of it (a cluster's endpoints, a listener's route table) and the newest change marker in it.
func decode(typeURL string, a *anypb.Any) ([]string, int64, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, 0, fmt.Errorf("a %s in a %s response", a.GetTypeUrl(), typeURL)
	}
	if lightDecode {
		return decodedOnce(typeURL, a)
	}
	return decodeWhole(typeURL, a)
}

// decoded is what decoding one resource gave.
type decoded struct {
	deps []string
	gen  int64
}

// lightCache holds, with -decode light, what each distinct resource decoded to. Every node of a group is
// sent the same bytes, so the fleet decodes each resource once instead of once per node: on one machine
// the simulated fleet's decoding competes with dynup for the CPU, and a real fleet's does not.
var lightCache struct {
	sync.RWMutex
	byType map[string]map[string]decoded // type URL → resource bytes → result
	size   int
}

// lightCacheSize bounds the cache; it is emptied when full (old resources are not sent again).
const lightCacheSize = 1 << 16

// decodedOnce decodes a resource the first time its bytes are seen, from the wire format for the types a
// node sends many of, whole for listeners (a few per node), and returns what that gave after that.
func decodedOnce(typeURL string, a *anypb.Any) ([]string, int64, error) {
	lightCache.RLock()
	d, ok := lightCache.byType[typeURL][string(a.Value)] // indexing with a converted []byte copies nothing
	lightCache.RUnlock()
	if ok {
		return d.deps, d.gen, nil
	}
	var err error
	if typeURL == resource.ListenerType {
		d.deps, d.gen, err = decodeWhole(typeURL, a)
	} else {
		d.deps, d.gen, err = decodeLight(typeURL, a.Value)
	}
	if err != nil {
		return nil, 0, err
	}
	lightCache.Lock()
	if lightCache.byType == nil || lightCache.size >= lightCacheSize {
		lightCache.byType, lightCache.size = map[string]map[string]decoded{}, 0
	}
	m := lightCache.byType[typeURL]
	if m == nil {
		m = map[string]decoded{}
		lightCache.byType[typeURL] = m
	}
	m[string(a.Value)] = d
	lightCache.size++
	lightCache.Unlock()
	return d.deps, d.gen, nil
}

// decodeWhole decodes a resource into Envoy's message, as Envoy does.
func decodeWhole(typeURL string, a *anypb.Any) ([]string, int64, error) {
	switch typeURL {
	case resource.ClusterType:
		c := &cluster.Cluster{}
		if err := proto.Unmarshal(a.Value, c); err != nil {
			return nil, 0, err
		}
		if c.GetType() == cluster.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.Name
			}
			return []string{name}, 0, nil
		}
		return nil, 0, nil
	case resource.EndpointType:
		cla := &endpoint.ClusterLoadAssignment{}
		if err := proto.Unmarshal(a.Value, cla); err != nil {
			return nil, 0, err
		}
		var gen int64
		for _, loc := range cla.Endpoints {
			for _, lb := range loc.LbEndpoints {
				if p := int64(lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()); p >= markerBase {
					gen = max(gen, p-markerBase)
				}
			}
		}
		return nil, gen, nil
	case resource.ListenerType:
		l := &listener.Listener{}
		if err := proto.Unmarshal(a.Value, l); err != nil {
			return nil, 0, err
		}
		var routes []string
		managers := []*anypb.Any{l.GetApiListener().GetApiListener()}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				managers = append(managers, f.GetTypedConfig())
			}
		}
		for _, m := range managers {
			mgr := &hcm.HttpConnectionManager{}
			if m == nil || !m.MessageIs(mgr) {
				continue
			}
			if err := m.UnmarshalTo(mgr); err != nil {
				return nil, 0, err
			}
			if rds := mgr.GetRds(); rds != nil {
				routes = append(routes, rds.RouteConfigName)
			}
		}
		return routes, 0, nil
	case resource.RouteType:
		rc := &route.RouteConfiguration{}
		return nil, 0, proto.Unmarshal(a.Value, rc)
	}
	return nil, 0, errors.New("unknown type " + typeURL)
}
