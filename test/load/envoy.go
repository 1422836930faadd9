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
	// nodeWire is node encoded, with -decode light: encoded once, not for every request.
	nodeWire []byte
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
	var opts []grpc.CallOption
	if lightDecode {
		if e.nodeWire == nil {
			b, err := encodeNode(e.node)
			if err != nil {
				return err
			}
			e.nodeWire = b
		}
		opts = append(opts, grpc.ForceCodecV2(fleetCodec))
	}
	if e.delta {
		stream, err := client.DeltaAggregatedResources(ctx, opts...)
		if err != nil {
			return err
		}
		return e.runDelta(stream)
	}
	stream, err := client.StreamAggregatedResources(ctx, opts...)
	if err != nil {
		return err
	}
	return e.runSotw(stream)
}

// fleetTypes are the types a node subscribes to.
var fleetTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// typeOf returns a response's type URL: one of fleetTypes when it is one (without allocating).
func typeOf(b []byte) string {
	for _, t := range fleetTypes {
		if string(b) == t {
			return t
		}
	}
	return string(b)
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
	for _, t := range fleetTypes {
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

// sotwResponse is what a node takes from a state-of-the-world response.
type sotwResponse struct {
	typeURL, version, nonce string
	deps                    []string // sorted: what the node must subscribe to because of the resources
	gen                     int64    // the newest change marker in them
}

func (e *envoy) runSotw(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) error {
	subs := newSubscriptions()
	send := func(typeURL string, names []string) error {
		ts := subs.types[typeURL]
		r := sotwRequest{typeURL: typeURL, version: ts.version, nonce: ts.nonce, names: names}
		if lightDecode {
			return stream.SendMsg(&encodedRequest{r.encode(e.nodeWire)})
		}
		return stream.Send(r.message(e.node))
	}
	recv := func() (sotwResponse, error) { return e.recvSotwWhole(stream) }
	if lightDecode {
		var frame responseFrame
		recv = func() (sotwResponse, error) { return e.recvSotwWire(stream, &frame) }
	}
	if err := send(resource.ClusterType, nil); err != nil {
		return err
	}
	if err := send(resource.ListenerType, nil); err != nil {
		return err
	}
	for {
		resp, err := recv()
		if err != nil {
			return err
		}
		ts := subs.types[resp.typeURL]
		ts.version, ts.nonce = resp.version, resp.nonce
		// The ACK names what the node subscribes to, as Envoy's does.
		if err := send(resp.typeURL, ts.names); err != nil {
			return err
		}
		at := time.Now()
		ts.acked = true
		switch resp.typeURL {
		case resource.ClusterType, resource.ListenerType: // sent whole: their dependencies are all there is
			dep := subs.types[dependent(resp.typeURL)]
			if !slices.Equal(dep.names, resp.deps) {
				dep.names = resp.deps
				if err := send(dependent(resp.typeURL), resp.deps); err != nil {
					return err
				}
			}
		case resource.EndpointType:
			e.advance(resp.gen, at)
		}
		if subs.complete() {
			e.served1.Do(func() { close(e.served) })
		}
	}
}

// recvSotwWhole receives a response as a message, and decodes it (-decode full).
func (e *envoy) recvSotwWhole(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) (sotwResponse, error) {
	resp, err := stream.Recv()
	if err != nil {
		return sotwResponse{}, err
	}
	e.responses.Add(1)
	if !slices.Contains(fleetTypes, resp.TypeUrl) {
		return sotwResponse{}, fmt.Errorf("response of unexpected type %s", resp.TypeUrl)
	}
	r := sotwResponse{typeURL: resp.TypeUrl, version: resp.VersionInfo, nonce: resp.Nonce}
	for _, a := range resp.Resources {
		deps, gen, err := decode(resp.TypeUrl, a)
		if err != nil {
			return sotwResponse{}, err
		}
		r.deps = append(r.deps, deps...)
		r.gen = max(r.gen, gen)
	}
	slices.Sort(r.deps)
	r.deps = slices.Compact(r.deps)
	return r, nil
}

// recvSotwWire receives a response as its encoding, into frame, and reads it there (-decode light).
func (e *envoy) recvSotwWire(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, frame *responseFrame) (sotwResponse, error) {
	defer frame.release()
	if err := stream.RecvMsg(frame); err != nil {
		return sotwResponse{}, err
	}
	e.responses.Add(1)
	resp, err := readResponse(frame.bytes(), false)
	if err != nil {
		return sotwResponse{}, err
	}
	r := sotwResponse{typeURL: typeOf(resp.typeURL), version: string(resp.version), nonce: string(resp.nonce)}
	if !slices.Contains(fleetTypes, r.typeURL) {
		return sotwResponse{}, fmt.Errorf("response of unexpected type %s", r.typeURL)
	}
	err = resp.eachResource(func(_ []byte, a wireAny) error {
		deps, gen, err := decodeWire(r.typeURL, a)
		if err != nil {
			return err
		}
		r.deps = append(r.deps, deps...)
		r.gen = max(r.gen, gen)
		return nil
	})
	if err != nil {
		return sotwResponse{}, err
	}
	slices.Sort(r.deps)
	r.deps = slices.Compact(r.deps)
	return r, nil
}

func (e *envoy) runDelta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) error {
	subs := newSubscriptions()
	send := func(r deltaRequest, withNode bool) error {
		if lightDecode {
			var node []byte
			if withNode {
				node = e.nodeWire
			}
			return stream.SendMsg(&encodedRequest{r.encode(node)})
		}
		var node *core.Node
		if withNode {
			node = e.node
		}
		return stream.Send(r.message(node))
	}
	recv := func() (typeURL, nonce string, gen int64, err error) { return e.recvDeltaWhole(stream, subs) }
	if lightDecode {
		var frame responseFrame
		recv = func() (string, string, int64, error) { return e.recvDeltaWire(stream, &frame, subs) }
	}
	for _, t := range []string{resource.ClusterType, resource.ListenerType} {
		if err := send(deltaRequest{typeURL: t}, true); err != nil {
			return err
		}
	}
	for {
		typeURL, nonce, maxGen, err := recv()
		if err != nil {
			return err
		}
		if err := send(deltaRequest{typeURL: typeURL, nonce: nonce}, false); err != nil {
			return err
		}
		at := time.Now()
		ts := subs.types[typeURL]
		ts.acked = true
		switch typeURL {
		case resource.ClusterType, resource.ListenerType:
			var deps []string
			for _, d := range subs.held[typeURL] {
				deps = append(deps, d...)
			}
			slices.Sort(deps)
			deps = slices.Compact(deps)
			dep := subs.types[dependent(typeURL)]
			added, removed := diff(dep.names, deps)
			if len(added)+len(removed) > 0 {
				dep.names = deps
				if err := send(deltaRequest{typeURL: dependent(typeURL), subscribe: added, unsubscribe: removed}, false); err != nil {
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

// heldOf returns the resources the node holds of a type, by name, with their dependencies.
func (s *subscriptions) heldOf(typeURL string) map[string][]string {
	held := s.held[typeURL]
	if held == nil {
		held = map[string][]string{}
		s.held[typeURL] = held
	}
	return held
}

// recvDeltaWhole receives an incremental response as a message, decodes it (-decode full) and applies it
// to what the node holds; it returns the response's type, nonce and newest change marker.
func (e *envoy) recvDeltaWhole(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, subs *subscriptions) (string, string, int64, error) {
	resp, err := stream.Recv()
	if err != nil {
		return "", "", 0, err
	}
	e.responses.Add(1)
	if subs.types[resp.TypeUrl] == nil {
		return "", "", 0, fmt.Errorf("response of unexpected type %s", resp.TypeUrl)
	}
	held := subs.heldOf(resp.TypeUrl)
	var maxGen int64
	for _, r := range resp.Resources {
		deps, gen, err := decode(resp.TypeUrl, r.Resource)
		if err != nil {
			return "", "", 0, err
		}
		held[r.Name] = deps
		maxGen = max(maxGen, gen)
	}
	for _, name := range resp.RemovedResources {
		delete(held, name)
	}
	return resp.TypeUrl, resp.Nonce, maxGen, nil
}

// recvDeltaWire is recvDeltaWhole for -decode light: it receives the response's encoding into frame and
// reads it there.
func (e *envoy) recvDeltaWire(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, frame *responseFrame, subs *subscriptions) (string, string, int64, error) {
	defer frame.release()
	if err := stream.RecvMsg(frame); err != nil {
		return "", "", 0, err
	}
	e.responses.Add(1)
	resp, err := readResponse(frame.bytes(), true)
	if err != nil {
		return "", "", 0, err
	}
	typeURL := typeOf(resp.typeURL)
	if subs.types[typeURL] == nil {
		return "", "", 0, fmt.Errorf("response of unexpected type %s", typeURL)
	}
	held := subs.heldOf(typeURL)
	var maxGen int64
	err = resp.eachResource(func(name []byte, a wireAny) error {
		deps, gen, err := decodeWire(typeURL, a)
		if err != nil {
			return err
		}
		held[string(name)] = deps
		maxGen = max(maxGen, gen)
		return nil
	})
	if err == nil {
		err = resp.eachRemoved(func(name []byte) { delete(held, string(name)) })
	}
	if err != nil {
		return "", "", 0, err
	}
	return typeURL, string(resp.nonce), maxGen, nil
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

// lightDecode makes the nodes read only what they need (names, endpoint ports) straight from the wire
// format instead of building whole messages (decodeWire instead of decode, and responses and requests as
// their encodings: see wireCodec): on one machine, decoding every resource of thousands of streams costs
// the tool several times dynup's CPU (see -decode). Set once, before any stream starts.
var lightDecode bool

// decode decodes one resource as Envoy must before using it, and returns what the node must subscribe to
// because of it (a cluster's endpoints, a listener's route table) and the newest change marker in it.
func decode(typeURL string, a *anypb.Any) ([]string, int64, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, 0, fmt.Errorf("a %s in a %s response", a.GetTypeUrl(), typeURL)
	}
	return decodeWhole(typeURL, a.GetValue())
}

// decodeWire is decode for -decode light, given the Any as it is in the response's encoding.
func decodeWire(typeURL string, a wireAny) ([]string, int64, error) {
	if string(a.typeURL) != typeURL {
		return nil, 0, fmt.Errorf("a %s in a %s response", a.typeURL, typeURL)
	}
	return decodedOnce(typeURL, a.value)
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
func decodedOnce(typeURL string, value []byte) ([]string, int64, error) {
	lightCache.RLock()
	d, ok := lightCache.byType[typeURL][string(value)] // indexing with a converted []byte copies nothing
	lightCache.RUnlock()
	if ok {
		return d.deps, d.gen, nil
	}
	var err error
	if typeURL == resource.ListenerType {
		d.deps, d.gen, err = decodeWhole(typeURL, value)
	} else {
		d.deps, d.gen, err = decodeLight(typeURL, value)
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
	m[string(value)] = d // a copy: value is in a frame that is reused
	lightCache.size++
	lightCache.Unlock()
	return d.deps, d.gen, nil
}

// decodeWhole decodes a resource (an Any's value) into Envoy's message, as Envoy does.
func decodeWhole(typeURL string, value []byte) ([]string, int64, error) {
	switch typeURL {
	case resource.ClusterType:
		c := &cluster.Cluster{}
		if err := proto.Unmarshal(value, c); err != nil {
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
		if err := proto.Unmarshal(value, cla); err != nil {
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
		if err := proto.Unmarshal(value, l); err != nil {
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
		return nil, 0, proto.Unmarshal(value, rc)
	}
	return nil, 0, errors.New("unknown type " + typeURL)
}
