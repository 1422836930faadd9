package serve

import (
	"bytes"
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// serverCodec is gRPC's proto codec, except that it hands a state-of-the-world request over undecoded (as a
// requestFrame) for the stream to decode with requestDecoder.
type serverCodec struct{ proto encoding.CodecV2 }

func newServerCodec() serverCodec { return serverCodec{proto: encoding.GetCodecV2(protocodec.Name)} }

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedResponse); ok {
		if head, tail, ok := e.envelope(); ok {
			// The shared resources go out as they are, between the stream's own fields: copying them
			// into one buffer per stream was most of what a change allocated.
			return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(e.resources), mem.SliceBuffer(tail)}, nil
		}
		return c.proto.Marshal(e.resp)
	}
	return c.proto.Marshal(v)
}

func (c serverCodec) Name() string { return c.proto.Name() }

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*requestFrame); ok {
		f.buf = f.buf[:0]
		for _, b := range data {
			f.buf = append(f.buf, b.ReadOnlyData()...)
		}
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// encodedResponse is a DiscoveryResponse or a DeltaDiscoveryResponse whose resources field is already
// encoded, shared by every stream sent the same resources: a new stream is sent every cluster and every
// endpoint assignment, and encoding them again for each of 10,000 reconnecting streams was an eighth of
// dynup's CPU; a change is sent alike to every stream that wants all of it.
type encodedResponse struct {
	resp      proto.Message // *discovery.DiscoveryResponse or *discovery.DeltaDiscoveryResponse
	resources []byte        // resp's resources, encoded as field 2
}

// envelope returns what proto.Marshal writes for resp before its resources and after them, fields in
// number order, or false when resp has a field this does not write.
func (e *encodedResponse) envelope() (head, tail []byte, ok bool) {
	var b []byte
	var headLen int
	switch r := e.resp.(type) {
	case *discovery.DiscoveryResponse: // version_info 1; type_url 4, nonce 5
		if r.Canary || r.ControlPlane != nil || len(r.ResourceErrors) > 0 || len(r.ProtoReflect().GetUnknown()) > 0 {
			return nil, nil, false
		}
		b = appendString(make([]byte, 0, len(r.VersionInfo)+len(r.TypeUrl)+len(r.Nonce)+16), 1, r.VersionInfo)
		headLen = len(b)
		b = appendString(b, 4, r.TypeUrl)
		b = appendString(b, 5, r.Nonce)
	case *discovery.DeltaDiscoveryResponse: // system_version_info 1; type_url 4, nonce 5, removed_resources 6
		if r.ControlPlane != nil || len(r.RemovedResourceNames) > 0 || len(r.ProtoReflect().GetUnknown()) > 0 {
			return nil, nil, false
		}
		size := len(r.SystemVersionInfo) + len(r.TypeUrl) + len(r.Nonce) + 16
		for _, n := range r.RemovedResources {
			size += len(n) + 6
		}
		b = appendString(make([]byte, 0, size), 1, r.SystemVersionInfo)
		headLen = len(b)
		b = appendString(b, 4, r.TypeUrl)
		b = appendString(b, 5, r.Nonce)
		for _, n := range r.RemovedResources { // repeated: written even when empty
			b = protowire.AppendTag(b, 6, protowire.BytesType)
			b = protowire.AppendString(b, n)
		}
	default:
		return nil, nil, false
	}
	return b[:headLen:headLen], b[headLen:], true
}

// appendString appends a proto3 string field, which is left out when empty.
func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// requestFrame is one encoded DiscoveryRequest, in a buffer the stream reuses for the next.
type requestFrame struct{ buf []byte }

// DiscoveryRequest's fields (envoy/service/discovery/v3/discovery.proto).
const (
	fieldVersionInfo      protowire.Number = 1
	fieldNode             protowire.Number = 2
	fieldResourceNames    protowire.Number = 3
	fieldTypeURL          protowire.Number = 4
	fieldResponseNonce    protowire.Number = 5
	fieldErrorDetail      protowire.Number = 6
	fieldResourceLocators protowire.Number = 7
)

// maxDecoderTypes bounds the types a decoder remembers names for; a stream asking for more is ended by the
// node tracker anyway.
const maxDecoderTypes = 16

// requestDecoder decodes one stream's DiscoveryRequests into what proto.Unmarshal would make of them, but
// with little new memory for a request like the one before: a node sends its Node (metadata and all) and
// every name it subscribes to with every ACK, and those rarely change. Where they are the same bytes as in
// the stream's previous request (of the type, for names), the request gets the same Node and the same
// names slice, which nobody modifies. Anything unusual (an unknown field, a message field twice, a string
// that is not UTF-8, a malformed message) is left to proto.Unmarshal.
type requestDecoder struct {
	nodeRaw []byte
	node    *core.Node // decoded from nodeRaw; nil until a request has one
	types   []decodedType
}

// decodedType is what the stream's latest request of one type said, to reuse.
type decodedType struct {
	typeURL  string
	version  string
	names    []string
	namesRaw []byte // names' encoding, when it was contiguous (nil otherwise)
}

func (d *requestDecoder) decode(b []byte) (*discovery.DiscoveryRequest, error) {
	var (
		version, typeURL, nonce     []byte
		node, errorDetail           []byte
		hasNode, hasError           bool
		locators                    [][]byte
		hasVersion, hasType, hasNon bool
	)
	names := 0
	// namesRaw is the names' encoding when they come one after the other (as encoders write them): compared
	// with the previous request's at once, not name by name.
	namesStart, namesEnd, namesContiguous := 0, 0, true
	for rest := b; len(rest) > 0; {
		at := len(b) - len(rest)
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || typ != protowire.BytesType {
			return unmarshalRequest(b)
		}
		rest = rest[n:]
		v, n := protowire.ConsumeBytes(rest)
		if n < 0 {
			return unmarshalRequest(b)
		}
		rest = rest[n:]
		switch num {
		case fieldVersionInfo, fieldTypeURL, fieldResponseNonce:
			if !utf8.Valid(v) { // proto fails on any, not only the last of a repeated one
				return unmarshalRequest(b)
			}
		}
		switch num {
		case fieldVersionInfo:
			version, hasVersion = v, true
		case fieldNode:
			if hasNode { // proto merges the two; rare enough to leave to it
				return unmarshalRequest(b)
			}
			node, hasNode = v, true
		case fieldResourceNames:
			if names == 0 {
				namesStart = at
			} else if at != namesEnd {
				namesContiguous = false
			}
			namesEnd = len(b) - len(rest)
			names++
		case fieldTypeURL:
			typeURL, hasType = v, true
		case fieldResponseNonce:
			nonce, hasNon = v, true
		case fieldErrorDetail:
			if hasError {
				return unmarshalRequest(b)
			}
			errorDetail, hasError = v, true
		case fieldResourceLocators:
			locators = append(locators, v)
		default:
			return unmarshalRequest(b) // kept by proto as unknown fields
		}
	}
	req := &discovery.DiscoveryRequest{}
	if hasNode {
		if d.node == nil || !bytes.Equal(node, d.nodeRaw) {
			n := &core.Node{}
			if err := nestedUnmarshal.Unmarshal(node, n); err != nil {
				return nil, err
			}
			d.node, d.nodeRaw = n, append(d.nodeRaw[:0], node...)
		}
		req.Node = d.node
	}
	if hasError {
		req.ErrorDetail = &rpcstatus.Status{}
		if err := nestedUnmarshal.Unmarshal(errorDetail, req.ErrorDetail); err != nil {
			return nil, err
		}
	}
	for _, l := range locators {
		loc := &discovery.ResourceLocator{}
		if err := nestedUnmarshal.Unmarshal(l, loc); err != nil {
			return nil, err
		}
		req.ResourceLocators = append(req.ResourceLocators, loc)
	}
	if hasNon {
		req.ResponseNonce = string(nonce)
	}
	t := d.typeState(typeURL)
	if hasType {
		req.TypeUrl = t.typeURL
	}
	if hasVersion {
		if string(version) != t.version {
			t.version = string(version)
		}
		req.VersionInfo = t.version
	}
	if names > 0 {
		var raw []byte
		if namesContiguous {
			raw = b[namesStart:namesEnd]
		}
		if raw != nil && t.namesRaw != nil && bytes.Equal(raw, t.namesRaw) {
			req.ResourceNames = t.names
			return req, nil
		}
		if !t.sameNames(b, names) {
			list := make([]string, 0, names)
			valid := true
			eachName(b, func(n []byte) bool {
				valid = utf8.Valid(n)
				list = append(list, string(n))
				return valid
			})
			if !valid {
				return unmarshalRequest(b)
			}
			t.names = list
		}
		t.namesRaw = append(t.namesRaw[:0], raw...)
		if raw == nil {
			t.namesRaw = nil
		}
		req.ResourceNames = t.names
	}
	return req, nil
}

// typeState returns the remembered state of a type, adding it when there is room, or a fresh one.
func (d *requestDecoder) typeState(typeURL []byte) *decodedType {
	for i := range d.types {
		if d.types[i].typeURL == string(typeURL) {
			return &d.types[i]
		}
	}
	t := decodedType{typeURL: string(typeURL)}
	if len(d.types) < maxDecoderTypes {
		d.types = append(d.types, t)
		return &d.types[len(d.types)-1]
	}
	return &t
}

// sameNames reports whether the count names of request b are the type's remembered names.
func (t *decodedType) sameNames(b []byte, count int) bool {
	if count != len(t.names) {
		return false
	}
	i, same := 0, true
	eachName(b, func(n []byte) bool {
		same = string(n) == t.names[i]
		i++
		return same
	})
	return same
}

// eachName calls fn with each resource name of request b, which decode has walked already, until fn
// returns false. The names are read from b again rather than kept from that walk: a list of them, kept
// per stream for the next request, was 4 KiB of pointers per Envoy for the garbage collector to scan.
func eachName(b []byte, fn func(n []byte) bool) {
	for len(b) > 0 {
		num, _, n := protowire.ConsumeTag(b)
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		if num == fieldResourceNames && !fn(v) {
			return
		}
	}
}

// nestedUnmarshal decodes a message field as proto.Unmarshal does within the request: one level deeper,
// so the nesting it allows is the same.
var nestedUnmarshal = proto.UnmarshalOptions{RecursionLimit: protowire.DefaultRecursionLimit - 1}

func unmarshalRequest(b []byte) (*discovery.DiscoveryRequest, error) {
	req := &discovery.DiscoveryRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, err
	}
	return req, nil
}
