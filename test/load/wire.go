package main

import (
	"fmt"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
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
