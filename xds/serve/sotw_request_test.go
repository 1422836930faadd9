package serve

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// sameAsUnmarshal checks that the decoder makes of b what proto.Unmarshal does: the same message, or an
// error when it fails.
func sameAsUnmarshal(t *testing.T, d *requestDecoder, b []byte) {
	t.Helper()
	want := &discovery.DiscoveryRequest{}
	wantErr := proto.Unmarshal(b, want)
	got, err := d.decode(b)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("decode(%x): error %v, proto.Unmarshal's %v", b, err, wantErr)
	case err == nil && !proto.Equal(got, want):
		t.Fatalf("decode(%x):\n%v\nproto.Unmarshal:\n%v", b, got, want)
	}
}

// randomRequest is a request as nodes send them, with the odd rarity: node on some requests, few names
// out of a small set (so that they repeat), NACKs, locators, fields proto does not know.
func randomRequest(r *rand.Rand) *discovery.DiscoveryRequest {
	pick := func(options ...string) string { return options[r.IntN(len(options))] }
	req := &discovery.DiscoveryRequest{
		TypeUrl:       pick(resource.ClusterType, resource.EndpointType, resource.EndpointType, "", "type.example.com/T"),
		VersionInfo:   pick("", "v1", "v2"),
		ResponseNonce: pick("", "1", "2", "37"),
	}
	if r.IntN(2) == 0 {
		meta, _ := structpb.NewStruct(map[string]any{"dynup.kind": pick("envoy", "grpc"), "n": float64(r.IntN(2))})
		req.Node = &core.Node{Id: pick("envoy-1", "envoy-2"), Cluster: "fleet", Metadata: meta,
			Locality: &core.Locality{Zone: pick("", "a")}, UserAgentName: "envoy"}
	}
	n := r.IntN(5)
	if n == 4 {
		n = 100
	}
	for i := range n {
		req.ResourceNames = append(req.ResourceNames, pick("a", "b", "c", "*", "é", "upstream-"+string(rune('a'+i%26))))
	}
	if r.IntN(4) == 0 {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(r.IntN(17)), Message: pick("", "rejected")}
	}
	if r.IntN(8) == 0 {
		req.ResourceLocators = []*discovery.ResourceLocator{{Name: pick("a", "b"), DynamicParameters: map[string]string{"k": "v"}}}
	}
	return req
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The decoder makes of a stream's requests what proto.Unmarshal makes of each: random requests in
// sequence (one decoder, as on a stream), and the same mangled (bytes changed, cut, repeated, fields
// added), which may fail to decode, or decode into something else.
func TestRequestDecoderIsProtoUnmarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d requestDecoder
	for range 5000 {
		b := marshal(t, randomRequest(r))
		switch r.IntN(8) {
		case 0:
			if len(b) > 0 {
				b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
			}
		case 1:
			b = b[:r.IntN(len(b)+1)]
		case 2: // a field twice: strings take the last, messages merge
			b = append(b, marshal(t, randomRequest(r))...)
		case 3: // a field proto does not know, or a known one with another wire type
			b = protowire.AppendTag(b, protowire.Number(1+r.IntN(9)), protowire.VarintType)
			b = protowire.AppendVarint(b, 7)
		case 4: // invalid UTF-8 in a string
			b = protowire.AppendTag(b, protowire.Number(1+r.IntN(5)), protowire.BytesType)
			b = protowire.AppendBytes(b, []byte{0xff, 'x'})
		}
		sameAsUnmarshal(t, &d, b)
	}
}

// An ACK like the stream's previous request gets the previous Node and names, not copies; a different
// node or list is decoded anew.
func TestRequestDecoderReusesNodeAndNames(t *testing.T) {
	node := &core.Node{Id: "envoy-1", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}}}
	names := []string{"a", "b", "c"}
	var d requestDecoder
	decode := func(req *discovery.DiscoveryRequest) *discovery.DiscoveryRequest {
		t.Helper()
		got, err := d.decode(marshal(t, req))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := decode(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNames: names, ResponseNonce: "1"})
	other := decode(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, ResponseNonce: "2"})
	ack := decode(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNames: names, ResponseNonce: "3"})
	if ack.Node != first.Node || other.Node != first.Node {
		t.Error("the same node was decoded again")
	}
	if &ack.ResourceNames[0] != &first.ResourceNames[0] {
		t.Error("the same names were decoded again")
	}
	changed := decode(&discovery.DiscoveryRequest{Node: &core.Node{Id: "envoy-2"}, TypeUrl: resource.EndpointType,
		ResourceNames: []string{"a", "b", "d"}, ResponseNonce: "4"})
	if changed.Node.Id != "envoy-2" || !slices.Equal(changed.ResourceNames, []string{"a", "b", "d"}) || ack.ResourceNames[2] != "c" {
		t.Errorf("after a change: node %v, names %v (the ACK before: %v)", changed.Node, changed.ResourceNames, ack.ResourceNames)
	}

	// An ACK like the one before costs the request and its nonce, not a node and a hundred names.
	for i := range 100 {
		names = append(names, "upstream-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	b := marshal(t, &discovery.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNames: names,
		VersionInfo: "v1", ResponseNonce: "12345"})
	if _, err := d.decode(b); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() { d.decode(b) }); allocs > 2 {
		t.Errorf("%v allocations to decode an ACK like the one before", allocs)
	}
}

// FuzzDiscoveryRequestDecode decodes two requests in turn on one decoder, as a stream's, and checks each
// against proto.Unmarshal.
func FuzzDiscoveryRequestDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(marshal(f, randomRequest(r)), marshal(f, randomRequest(r)))
	}
	ack := marshal(f, &discovery.DiscoveryRequest{Node: &core.Node{Id: "n"}, TypeUrl: resource.EndpointType,
		ResourceNames: []string{"a", "b"}, VersionInfo: "v", ResponseNonce: "1"})
	f.Add(ack, ack)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var d requestDecoder
		sameAsUnmarshal(t, &d, first)
		sameAsUnmarshal(t, &d, second)
		sameAsUnmarshal(t, &d, first)
	})
}

// The same for an incremental response.
func TestEncodedDeltaResponseIsProtoMarshal(t *testing.T) {
	var resources []*discovery.Resource
	for i := 0; i < 3; i++ {
		a, err := anypb.New(&endpoint.ClusterLoadAssignment{ClusterName: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, &discovery.Resource{Name: fmt.Sprint("c", i), Version: fmt.Sprint("v", i), Resource: a})
	}
	codec := newServerCodec()
	for _, resp := range []*discovery.DeltaDiscoveryResponse{
		{SystemVersionInfo: "v1", TypeUrl: resource.EndpointType, Nonce: "7", Resources: resources},
		{TypeUrl: resource.EndpointType, Resources: resources, RemovedResources: []string{"gone", ""}},
		{SystemVersionInfo: "v2", TypeUrl: resource.EndpointType, Nonce: "8", RemovedResources: []string{"x"}},
		{SystemVersionInfo: "v3", TypeUrl: resource.EndpointType, Nonce: "9", Resources: resources, ControlPlane: &core.ControlPlane{Identifier: "x"}},
		{SystemVersionInfo: "v4", TypeUrl: resource.EndpointType, Nonce: "10", Resources: resources,
			RemovedResourceNames: []*discovery.ResourceName{{Name: "y"}}},
	} {
		wire, err := proto.Marshal(&discovery.DeltaDiscoveryResponse{Resources: resp.Resources}) // field 2 alone
		if err != nil {
			t.Fatal(err)
		}
		encodesAsProtoMarshal(t, codec, resp, &encodedResponse{resp: resp, resources: wire})
	}
}

// encodesAsProtoMarshal checks that the codec writes encoded as proto.Marshal writes resp.
func encodesAsProtoMarshal(t *testing.T, codec serverCodec, resp proto.Message, encoded any) {
	t.Helper()
	got, err := codec.Marshal(encoded)
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Materialize(), want) {
		t.Fatalf("%v: encoded\n%x\nwant\n%x", resp, got.Materialize(), want)
	}
}

// A response sent with its resources already encoded is, byte for byte, what proto.Marshal makes of it;
// one with a field that path does not write goes through proto.Marshal.
func TestEncodedResponseIsProtoMarshal(t *testing.T) {
	var resources []*anypb.Any
	for i := 0; i < 3; i++ {
		a, err := anypb.New(&endpoint.ClusterLoadAssignment{ClusterName: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, a)
	}
	codec := newServerCodec()
	for _, resp := range []*discovery.DiscoveryResponse{
		{VersionInfo: "v1", TypeUrl: resource.EndpointType, Nonce: "7", Resources: resources},
		{TypeUrl: resource.EndpointType, Resources: resources},
		{VersionInfo: "v2", TypeUrl: resource.EndpointType, Nonce: "8"},
		{VersionInfo: "v3", TypeUrl: resource.EndpointType, Nonce: "9", Resources: resources, ControlPlane: &core.ControlPlane{Identifier: "x"}},
		{VersionInfo: "v4", TypeUrl: resource.EndpointType, Nonce: "10", Resources: resources, Canary: true},
	} {
		wire, err := proto.Marshal(&discovery.DiscoveryResponse{Resources: resp.Resources}) // field 2 alone
		if err != nil {
			t.Fatal(err)
		}
		encodesAsProtoMarshal(t, codec, resp, &encodedResponse{resp: resp, resources: wire})
	}
}
