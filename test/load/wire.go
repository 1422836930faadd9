package main

import (
	"fmt"
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// decodeLight is decode for -decode=light: it walks the wire format for the fields the node needs. Field
// numbers are Envoy's v3 API: Cluster.name 1, .type 2, .eds_cluster_config 3 (its service_name 2);
// ClusterLoadAssignment.endpoints 2 → LocalityLbEndpoints.lb_endpoints 2 → LbEndpoint.endpoint 1 →
// Endpoint.address 1 → Address.socket_address 1 → SocketAddress.port_value 3. Listeners are rare and
// decoded whole; route tables are not needed.
func decodeLight(typeURL string, b []byte) ([]string, int64, error) {
	switch typeURL {
	case resource.ClusterType:
		var name, service string
		eds := false
		err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
			switch {
			case num == 1 && typ == protowire.BytesType:
				name = string(v)
			case num == 2 && typ == protowire.VarintType:
				eds = n == 3 // Cluster.EDS
			case num == 3 && typ == protowire.BytesType:
				return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
					if num == 2 && typ == protowire.BytesType {
						service = string(v)
					}
					return nil
				})
			}
			return nil
		})
		if err != nil || !eds {
			return nil, 0, err
		}
		if service == "" {
			service = name
		}
		return []string{service}, 0, nil
	case resource.EndpointType:
		var gen int64
		err := path(b, []protowire.Number{2, 2, 1, 1, 1}, func(socket []byte) error {
			return fields(socket, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
				if num == 3 && typ == protowire.VarintType && int64(n) >= markerBase {
					gen = max(gen, int64(n)-markerBase)
				}
				return nil
			})
		})
		return nil, gen, err
	case resource.RouteType:
		return nil, 0, nil
	}
	return nil, 0, fmt.Errorf("no light decoding for %s", typeURL)
}

// fields calls fn for each top-level field of a message: v is a length-delimited field's bytes, n a
// varint's value.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// path calls fn with every message found by following the length-delimited fields nums from b.
func path(b []byte, nums []protowire.Number, fn func([]byte) error) error {
	if len(nums) == 0 {
		return fn(b)
	}
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == nums[0] && typ == protowire.BytesType {
			return path(v, nums[1:], fn)
		}
		return nil
	})
}

// With -decode light the fleet neither decodes its responses nor marshals its requests as messages: at
// connect and reconnect a response holds a hundred resources, each an Any that proto.Unmarshal allocates
// and copies, and every state-of-the-world ACK carries the node's Node, which proto.Marshal walked again
// each time; together a quarter of the fleet's CPU, taken from the two it shares with dynup. The stream's
// codec (wireCodec) hands over a response's encoding (responseFrame), which the node reads in place
// (readResponse), and sends a request it was given encoded (encodedRequest) as it is.

// wireCodec is gRPC's proto codec, except for responseFrame and encodedRequest.
type wireCodec struct{ proto encoding.CodecV2 }

var fleetCodec = wireCodec{proto: encoding.GetCodecV2(protocodec.Name)}

func (c wireCodec) Name() string { return c.proto.Name() }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*encodedRequest); ok {
		// Written as it is: gRPC may hold the bytes after SendMsg returns (its writer goroutine, a
		// transparent retry), so they are never reused.
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*responseFrame); ok {
		f.release()
		f.buf = mem.DefaultBufferPool().Get(data.Len())
		data.CopyTo(*f.buf)
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// responseFrame is one response's encoding. Its buffer comes from gRPC's pool and goes back to it once the
// node has read the response (release): kept per stream, the largest response each of 10,000 streams was
// sent would stay in memory.
type responseFrame struct{ buf *[]byte }

func (f *responseFrame) bytes() []byte {
	if f.buf == nil {
		return nil
	}
	return *f.buf
}

func (f *responseFrame) release() {
	if f.buf != nil {
		mem.DefaultBufferPool().Put(f.buf)
		f.buf = nil
	}
}

// encodedRequest is a request's encoding, as proto.Marshal writes the message.
type encodedRequest struct{ b []byte }

// encodeNode encodes a node's Node once, for every request that carries it. Maps (the metadata) are
// written in key order, so that a node's requests are the same bytes every time, as dynup expects of an
// Envoy (it decodes a Node again only when its bytes change). Never nil, as nil is "no node" to the
// encoders below (proto.Marshal gives an empty Node as an empty, non-nil slice, but does not promise to).
func encodeNode(n *core.Node) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

// sotwRequest is a DiscoveryRequest as a node sends one: its Node goes with every request, as Envoy's does.
type sotwRequest struct {
	typeURL, version, nonce string
	names                   []string
}

// message is the request as -decode full sends it.
func (r sotwRequest) message(node *core.Node) *discovery.DiscoveryRequest {
	return &discovery.DiscoveryRequest{Node: node, TypeUrl: r.typeURL, VersionInfo: r.version,
		ResponseNonce: r.nonce, ResourceNames: r.names}
}

// encode returns what proto.Marshal writes for message, given the node's encoding (nil for none): fields
// in number order, empty strings left out. DiscoveryRequest (envoy/service/discovery/v3/discovery.proto):
// version_info 1, node 2, resource_names 3, type_url 4, response_nonce 5; error_detail (6) and
// resource_locators (7) are never sent by the fleet.
func (r sotwRequest) encode(node []byte) []byte {
	b := make([]byte, 0, encodedSize(node, []string{r.version, r.typeURL, r.nonce}, r.names))
	b = appendString(b, 1, r.version)
	b = appendNode(b, 2, node)
	for _, n := range r.names { // repeated: written even when empty
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	b = appendString(b, 4, r.typeURL)
	return appendString(b, 5, r.nonce)
}

// deltaRequest is a DeltaDiscoveryRequest as a node sends one: its Node goes with the first of each type.
type deltaRequest struct {
	typeURL                string
	subscribe, unsubscribe []string
	nonce                  string
}

func (r deltaRequest) message(node *core.Node) *discovery.DeltaDiscoveryRequest {
	return &discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: r.typeURL, ResourceNamesSubscribe: r.subscribe,
		ResourceNamesUnsubscribe: r.unsubscribe, ResponseNonce: r.nonce}
}

// encode is sotwRequest.encode for DeltaDiscoveryRequest: node 1, type_url 2, resource_names_subscribe 3,
// resource_names_unsubscribe 4, response_nonce 6; initial_resource_versions (5), error_detail (7) and the
// resource locators (8, 9) are never sent by the fleet (a reconnecting node starts afresh).
func (r deltaRequest) encode(node []byte) []byte {
	b := make([]byte, 0, encodedSize(node, []string{r.typeURL, r.nonce}, r.subscribe, r.unsubscribe))
	b = appendNode(b, 1, node)
	b = appendString(b, 2, r.typeURL)
	for _, n := range r.subscribe {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	for _, n := range r.unsubscribe {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	return appendString(b, 6, r.nonce)
}

// encodedSize bounds a request's encoding, so that it is built in one allocation: a field's tag and
// length take at most 6 bytes below 2^28.
func encodedSize(node []byte, lists ...[]string) int {
	n := len(node) + 6
	for _, l := range lists {
		for _, s := range l {
			n += len(s) + 6
		}
	}
	return n
}

// appendString appends a proto3 string field, which is left out when empty.
func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendNode appends the encoded node as a message field, which is written when set, even empty.
func appendNode(b []byte, field protowire.Number, node []byte) []byte {
	if node == nil {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, node)
}

// wireResponse is what a node reads of a DiscoveryResponse or a DeltaDiscoveryResponse, found in its
// encoding: the byte slices point into it. Its resources are read by eachResource, its removed names
// (delta) by eachRemoved. Fields the node does not read are skipped; a field of the wrong wire type is
// skipped too, as proto.Unmarshal keeps it as an unknown field. Where a field comes twice the last wins.
type wireResponse struct {
	delta                   bool
	b                       []byte
	version, typeURL, nonce []byte // the delta version is system_version_info
}

// wireAny is a google.protobuf.Any in an encoding: type_url 1, value 2.
type wireAny struct{ typeURL, value []byte }

// The responses' fields (envoy/service/discovery/v3/discovery.proto). Resource is a delta resource.
const (
	responseVersion   protowire.Number = 1 // both
	responseResources protowire.Number = 2 // both
	responseTypeURL   protowire.Number = 4 // both
	responseNonce     protowire.Number = 5 // both
	deltaRemoved      protowire.Number = 6 // removed_resources
	resourceAny       protowire.Number = 2
	resourceName      protowire.Number = 3
	anyTypeURL        protowire.Number = 1
	anyValue          protowire.Number = 2
)

// readResponse reads a response's version, type and nonce, and checks that its fields are well formed (what
// is in its resources is checked by eachResource).
func readResponse(b []byte, delta bool) (wireResponse, error) {
	r := wireResponse{delta: delta, b: b}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case responseVersion:
			r.version = v
		case responseTypeURL:
			r.typeURL = v
		case responseNonce:
			r.nonce = v
		default:
			return nil
		}
		return validString(num, v)
	})
	return r, err
}

// eachResource calls fn with each resource: its name (delta only) and its Any. A delta resource without
// an Any gives an empty one, as proto.Unmarshal gives a nil Resource.Resource.
func (r wireResponse) eachResource(fn func(name []byte, a wireAny) error) error {
	return fields(r.b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != responseResources || typ != protowire.BytesType {
			return nil
		}
		var name []byte
		var a wireAny
		var err error
		if r.delta {
			err = fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == resourceName && typ == protowire.BytesType:
					name = v
					return validString(num, v)
				case num == resourceAny && typ == protowire.BytesType:
					return readAny(v, &a) // a message field given twice is merged
				}
				return nil
			})
		} else {
			err = readAny(v, &a)
		}
		if err != nil {
			return err
		}
		return fn(name, a)
	})
}

// eachRemoved calls fn with each name a delta response removes (removed_resources).
func (r wireResponse) eachRemoved(fn func(name []byte)) error {
	if !r.delta {
		return nil
	}
	return fields(r.b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != deltaRemoved || typ != protowire.BytesType {
			return nil
		}
		if err := validString(num, v); err != nil {
			return err
		}
		fn(v)
		return nil
	})
}

func readAny(b []byte, a *wireAny) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == anyTypeURL && typ == protowire.BytesType:
			a.typeURL = v
			return validString(num, v)
		case num == anyValue && typ == protowire.BytesType:
			a.value = v
		}
		return nil
	})
}

// validString fails as proto.Unmarshal does on a proto3 string that is not UTF-8 (Envoy rejects those too).
func validString(num protowire.Number, v []byte) error {
	if !utf8.Valid(v) {
		return fmt.Errorf("field %d: string is not valid UTF-8", num)
	}
	return nil
}
