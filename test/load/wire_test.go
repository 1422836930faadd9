package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// testNodes are nodes to encode requests with: none, an empty one, the fleet's own (with and without
// metadata), and one with several metadata keys (written in key order by encodeNode, hence compared
// with proto.Marshal's deterministic output).
func testNodes() map[string]*core.Node {
	many := newEnvoy(7, "b", "grpc", false, nil).node
	many.Metadata.Fields["a.first"] = structpb.NewNumberValue(1)
	many.Metadata.Fields["z.last"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewBoolValue(true)}})
	return map[string]*core.Node{
		"no node":           nil,
		"empty node":        {},
		"fleet node":        newEnvoy(1, "a", "envoy", false, nil).node,
		"fleet grpc node":   newEnvoy(2, "b", "grpc", true, nil).node,
		"node, 3 metadata":  many,
		"node, long values": {Id: strings.Repeat("é", 200), Cluster: "c"},
	}
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// The requests the fleet sends encoded with -decode light are the bytes proto.Marshal writes for the
// messages it sends with -decode full.
func TestEncodedRequestsAreProtoMarshal(t *testing.T) {
	long := strings.Repeat("svc-", 40) // a name longer than 127 bytes: a two-byte length
	sotw := []sotwRequest{
		{},
		{typeURL: resource.ClusterType},
		{typeURL: resource.EndpointType, version: "v1", nonce: "n1", names: []string{"svc-00000", "svc-00001"}},
		{typeURL: resource.EndpointType, nonce: "17", names: []string{long}},
		{typeURL: resource.RouteType, version: "ü-7", names: []string{""}}, // an empty name is still written
		{version: "only a version"},
		{nonce: "only a nonce", names: []string{"x"}},
	}
	delta := []deltaRequest{
		{},
		{typeURL: resource.ClusterType},
		{typeURL: resource.ListenerType, nonce: "3"},
		{typeURL: resource.EndpointType, subscribe: []string{"svc-00000", long, "svc-00002"}},
		{typeURL: resource.EndpointType, unsubscribe: []string{"svc-00003"}},
		{typeURL: resource.EndpointType, subscribe: []string{"a", ""}, unsubscribe: []string{"b", "c"}, nonce: "n"},
		{nonce: "only a nonce"},
	}
	for name, node := range testNodes() {
		var nodeWire []byte
		if node != nil {
			var err error
			if nodeWire, err = encodeNode(node); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range sotw {
			want := &discovery.DiscoveryRequest{VersionInfo: r.version, Node: node, ResourceNames: r.names,
				TypeUrl: r.typeURL, ResponseNonce: r.nonce}
			checkEncoded(t, name, r, r.message(node), want, r.encode(nodeWire))
		}
		for _, r := range delta {
			want := &discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: r.typeURL, ResourceNamesSubscribe: r.subscribe,
				ResourceNamesUnsubscribe: r.unsubscribe, ResponseNonce: r.nonce}
			checkEncoded(t, name, r, r.message(node), want, r.encode(nodeWire))
		}
	}
}

// checkEncoded checks that message (what -decode full sends) is want, and that encoded (what -decode
// light sends) is proto.Marshal's encoding of want.
func checkEncoded(t *testing.T, node string, r any, message, want proto.Message, encoded []byte) {
	t.Helper()
	if !proto.Equal(message, want) {
		t.Errorf("%s, %+v: message %v, want %v", node, r, message, want)
	}
	wantBytes, err := deterministic.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encoded, wantBytes) {
		t.Errorf("%s, %+v: encoded\n%x\nproto.Marshal writes\n%x", node, r, encoded, wantBytes)
	}
	if !strings.Contains(node, "metadata") { // one map entry at most: proto.Marshal's order is the only one
		if plain, _ := proto.Marshal(want); !bytes.Equal(encoded, plain) {
			t.Errorf("%s, %+v: encoded\n%x\nproto.Marshal writes\n%x", node, r, encoded, plain)
		}
	}
}

// walked is what a node reads of a response, by readResponse or by proto.Unmarshal.
type walked struct {
	Version, Type, Nonce string
	Resources            []walkedResource
	Removed              []string
}

type walkedResource struct{ Name, Type, Value string }

// walk reads b as the fleet does with -decode light.
func walk(b []byte, delta bool) (walked, error) {
	r, err := readResponse(b, delta)
	if err != nil {
		return walked{}, err
	}
	w := walked{Version: string(r.version), Type: string(r.typeURL), Nonce: string(r.nonce)}
	err = r.eachResource(func(name []byte, a wireAny) error {
		w.Resources = append(w.Resources, walkedResource{string(name), string(a.typeURL), string(a.value)})
		return nil
	})
	if err != nil {
		return walked{}, err
	}
	err = r.eachRemoved(func(name []byte) { w.Removed = append(w.Removed, string(name)) })
	return w, err
}

// unmarshalled reads b with proto.Unmarshal.
func unmarshalled(b []byte, delta bool) (walked, error) {
	if delta {
		m := &discovery.DeltaDiscoveryResponse{}
		if err := proto.Unmarshal(b, m); err != nil {
			return walked{}, err
		}
		w := walked{Version: m.SystemVersionInfo, Type: m.TypeUrl, Nonce: m.Nonce, Removed: m.RemovedResources}
		for _, r := range m.Resources {
			w.Resources = append(w.Resources, walkedResource{r.Name, r.GetResource().GetTypeUrl(), string(r.GetResource().GetValue())})
		}
		return w, nil
	}
	m := &discovery.DiscoveryResponse{}
	if err := proto.Unmarshal(b, m); err != nil {
		return walked{}, err
	}
	w := walked{Version: m.VersionInfo, Type: m.TypeUrl, Nonce: m.Nonce}
	for _, a := range m.Resources {
		w.Resources = append(w.Resources, walkedResource{"", a.TypeUrl, string(a.Value)})
	}
	return w, nil
}

// testResponses are encoded responses, each with whether it is a delta one.
func testResponses(t testing.TB) map[string]struct {
	b     []byte
	delta bool
} {
	withUnknown := &anypb.Any{TypeUrl: resource.ClusterType, Value: []byte("c2")}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 5))
	sotw := &discovery.DiscoveryResponse{VersionInfo: "v7", TypeUrl: resource.ClusterType, Nonce: "n7", Canary: true,
		Resources: []*anypb.Any{
			{TypeUrl: resource.ClusterType, Value: []byte("c1")},
			withUnknown,
			{TypeUrl: resource.ClusterType}, // an empty value
			{TypeUrl: resource.EndpointType, Value: bytes.Repeat([]byte{0xff, 0}, 300)},
		},
		ControlPlane:   &core.ControlPlane{Identifier: "dynup"},
		ResourceErrors: []*discovery.ResourceError{{ErrorDetail: &rpcstatus.Status{Code: 3, Message: "bad"}}},
	}
	delta := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: "sys", TypeUrl: resource.EndpointType, Nonce: "9",
		Resources: []*discovery.Resource{
			{Name: "svc-00000", Version: "1", Resource: &anypb.Any{TypeUrl: resource.EndpointType, Value: []byte("e0")},
				Aliases: []string{"x"}, Ttl: durationpb.New(time.Second), Metadata: &core.Metadata{}},
			{Name: "svc-00001", Resource: &anypb.Any{TypeUrl: resource.EndpointType, Value: []byte("e1")},
				CacheControl: &discovery.Resource_CacheControl{DoNotCache: true}},
			{Name: "no any"},
		},
		RemovedResources:     []string{"svc-00002", "svc-00003"},
		RemovedResourceNames: []*discovery.ResourceName{{Name: "svc-00002"}},
		ControlPlane:         &core.ControlPlane{Identifier: "dynup"},
	}
	enc := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// An unknown field, a known field of the wrong wire type (kept as unknown by proto.Unmarshal) and a
	// string field twice (the last wins), appended to an encoding.
	odd := func(b []byte, typeField protowire.Number) []byte {
		b = protowire.AppendTag(b, 99, protowire.BytesType)
		b = protowire.AppendString(b, "unknown")
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, 12)
		b = protowire.AppendTag(b, typeField, protowire.BytesType)
		return protowire.AppendString(b, "type.googleapis.com/other")
	}
	// A delta resource whose Any comes in two parts, which proto.Unmarshal merges.
	split := protowire.AppendTag(nil, 3, protowire.BytesType)
	split = protowire.AppendString(split, "split")
	split = protowire.AppendTag(split, 2, protowire.BytesType)
	split = protowire.AppendBytes(split, enc(&anypb.Any{TypeUrl: resource.EndpointType}))
	split = protowire.AppendTag(split, 2, protowire.BytesType)
	split = protowire.AppendBytes(split, enc(&anypb.Any{Value: []byte("second")}))
	splitResp := protowire.AppendTag(enc(delta), 2, protowire.BytesType)
	splitResp = protowire.AppendBytes(splitResp, split)
	return map[string]struct {
		b     []byte
		delta bool
	}{
		"sotw":          {enc(sotw), false},
		"sotw, odd":     {odd(enc(sotw), 4), false},
		"sotw, empty":   {enc(&discovery.DiscoveryResponse{}), false},
		"delta":         {enc(delta), true},
		"delta, odd":    {odd(enc(delta), 4), true},
		"delta, merged": {splitResp, true},
		"delta, empty":  {nil, true},
	}
}

// readResponse finds in a response's encoding what proto.Unmarshal finds in it, and in every prefix of
// it: the same fields where proto.Unmarshal succeeds, an error where it fails.
func TestReadResponseAgreesWithProtoUnmarshal(t *testing.T) {
	for name, tc := range testResponses(t) {
		want, err := unmarshalled(tc.b, tc.delta)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := walk(tc.b, tc.delta)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read\n%+v\nproto.Unmarshal reads\n%+v", name, got, want)
		}
		if name == "sotw" && len(want.Resources) != 4 || name == "delta" && (len(want.Resources) != 3 || len(want.Removed) != 2) {
			t.Fatalf("%s: the test's response is not what it was meant to be: %+v", name, want)
		}
		for i := range tc.b {
			want, wantErr := unmarshalled(tc.b[:i], tc.delta)
			got, err := walk(tc.b[:i], tc.delta)
			if (err != nil) != (wantErr != nil) {
				t.Errorf("%s, first %d bytes: error %v, proto.Unmarshal's %v", name, i, err, wantErr)
			} else if err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("%s, first %d bytes: read\n%+v\nproto.Unmarshal reads\n%+v", name, i, got, want)
			}
		}
	}
}

// A malformed response is an error, as it is to proto.Unmarshal.
func TestReadResponseRejectsMalformed(t *testing.T) {
	field := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	notUTF8 := []byte{'a', 0xff, 'b'}
	for _, tc := range []struct {
		name  string
		b     []byte
		delta bool
	}{
		{"field number 0", []byte{0x02, 0x00}, false},
		{"varint cut short", []byte{0x18, 0x80}, false},
		{"length past the end", []byte{0x0a, 0x05, 'a'}, false},
		{"end of a group never started", []byte{0x0c}, false},
		{"any cut short", field(2, []byte{0x0a, 0x05, 'a'}), false},
		{"any's type not UTF-8", field(2, field(1, notUTF8)), false},
		{"nonce not UTF-8", field(5, notUTF8), false},
		{"type not UTF-8", field(4, notUTF8), true},
		{"delta resource cut short", field(2, []byte{0x1a, 0x09}), true},
		{"delta resource's any cut short", field(2, field(2, []byte{0x12, 0x03})), true},
		{"delta resource's name not UTF-8", field(2, field(3, notUTF8)), true},
		{"removed name not UTF-8", field(6, notUTF8), true},
	} {
		if _, err := unmarshalled(tc.b, tc.delta); err == nil {
			t.Fatalf("%s: proto.Unmarshal accepts %x: not a malformed response", tc.name, tc.b)
		}
		if w, err := walk(tc.b, tc.delta); err == nil {
			t.Errorf("%s: %x read as %+v, want an error", tc.name, tc.b, w)
		}
	}
}

// Whatever the bytes, readResponse does not panic, and what proto.Unmarshal reads it reads alike. (Where
// proto.Unmarshal fails it may not: it skips fields the node does not read, proto.Unmarshal checks
// them.) go test runs the seeds; go test -fuzz FuzzReadResponse ./test/load searches further.
func FuzzReadResponse(f *testing.F) {
	for _, tc := range testResponses(f) {
		f.Add(tc.b, tc.delta)
	}
	f.Fuzz(func(t *testing.T, b []byte, delta bool) {
		got, err := walk(b, delta)
		want, wantErr := unmarshalled(b, delta)
		if wantErr != nil {
			return
		}
		if err != nil {
			t.Fatalf("%x: %v; proto.Unmarshal reads %+v", b, err, want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%x: read\n%+v\nproto.Unmarshal reads\n%+v", b, got, want)
		}
	})
}

// Single-byte corruptions of every test response, which go test does not leave to the fuzzer.
func TestReadResponseCorrupted(t *testing.T) {
	for name, tc := range testResponses(t) {
		for i := range tc.b {
			for _, c := range []byte{0x00, 0x02, 0x07, 0x0c, 0x7f, 0x80, 0xff, tc.b[i] ^ 0x04} {
				b := bytes.Clone(tc.b)
				b[i] = c
				got, err := walk(b, tc.delta)
				want, wantErr := unmarshalled(b, tc.delta)
				if wantErr == nil && (err != nil || !reflect.DeepEqual(got, want)) {
					t.Fatalf("%s, byte %d set to %#x: read %+v (error %v), proto.Unmarshal reads %+v", name, i, c, got, err, want)
				}
			}
		}
	}
}

// The codec passes an encodedRequest as it is and copies a response into a responseFrame, which stays
// intact once gRPC frees its buffers; anything else it leaves to gRPC's proto codec.
func TestWireCodec(t *testing.T) {
	protoCodec := encoding.GetCodecV2(protocodec.Name)
	if fleetCodec.Name() != protoCodec.Name() {
		t.Errorf("name %q, want %q", fleetCodec.Name(), protoCodec.Name())
	}
	req := []byte{0x22, 0x01, 'x'}
	out, err := fleetCodec.Marshal(&encodedRequest{req})
	if err != nil || !bytes.Equal(out.Materialize(), req) {
		t.Errorf("encoded request sent as %x (%v), want %x", out.Materialize(), err, req)
	}
	msg := &discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNames: []string{"a"}}
	out, err = fleetCodec.Marshal(msg)
	want, _ := protoCodec.Marshal(msg)
	if err != nil || !bytes.Equal(out.Materialize(), want.Materialize()) {
		t.Errorf("message sent as %x (%v), want %x", out.Materialize(), err, want.Materialize())
	}

	resp := testResponses(t)["sotw"].b
	pool := mem.DefaultBufferPool()
	var data mem.BufferSlice
	for rest := resp; len(rest) > 0; rest = rest[min(len(rest), 100):] { // as gRPC hands it over: in pieces
		data = append(data, mem.Copy(rest[:min(len(rest), 100)], pool))
	}
	var frame responseFrame
	if err := fleetCodec.Unmarshal(data, &frame); err != nil {
		t.Fatal(err)
	}
	data.Free()
	if !bytes.Equal(frame.bytes(), resp) {
		t.Errorf("frame holds %x, want %x", frame.bytes(), resp)
	}
	frame.release()
	if frame.bytes() != nil {
		t.Error("a released frame still holds its buffer")
	}
	var got discovery.DiscoveryResponse
	if err := fleetCodec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(resp)}, &got); err != nil || len(got.Resources) != 4 {
		t.Errorf("message received as %v (%v)", &got, err)
	}
}

// decodeWire reads from a resource's encoding what decode reads from its Any, and refuses an Any of
// another type than the response's.
func TestDecodeWireAgreesWithDecode(t *testing.T) {
	mgr, err := anypb.New(&hcm.HttpConnectionManager{RouteSpecifier: &hcm.HttpConnectionManager_Rds{
		Rds: &hcm.Rds{RouteConfigName: "routes-a"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []proto.Message{
		&cluster.Cluster{Name: "svc-1", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS}},
		&cluster.Cluster{Name: "svc-2", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{ServiceName: "eds-2"}},
		&cluster.Cluster{Name: "static"},
		&endpoint.ClusterLoadAssignment{ClusterName: "svc-1", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{portEndpoint(8080), portEndpoint(markerBase + 41), portEndpoint(markerBase + 7)}}}},
		&listener.Listener{Name: "l", ApiListener: &listener.ApiListener{ApiListener: mgr}},
	} {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		wantDeps, wantGen, err := decode(a.TypeUrl, a)
		if err != nil {
			t.Fatal(err)
		}
		deps, gen, err := decodeWire(a.TypeUrl, wireAny{[]byte(a.TypeUrl), a.Value})
		if err != nil || !reflect.DeepEqual(deps, wantDeps) || gen != wantGen {
			t.Errorf("%v: read %v, %d (%v), want %v, %d", m, deps, gen, err, wantDeps, wantGen)
		}
		if _, _, err := decodeWire(resource.RouteType, wireAny{[]byte(a.TypeUrl), a.Value}); err == nil {
			t.Errorf("a %s in a route response is accepted", a.TypeUrl)
		}
	}
}

func portEndpoint(port uint32) *endpoint.LbEndpoint {
	return &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "10.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}}}}
}
