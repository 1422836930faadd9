package translate

import (
	"strings"
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// ValidateAll does not open an Any; validateAll must, however deep it sits, and must still find it when
// the walk skips the fields that cannot hold one.
func TestValidateAllOpensPackedConfigs(t *testing.T) {
	bad, err := anypb.New(&hcm.HttpConnectionManager{}) // no stat_prefix, no route source: invalid
	if err != nil {
		t.Fatal(err)
	}
	l := &listener.Listener{Name: "l", FilterChains: []*listener.FilterChain{{
		Filters: []*listener.Filter{{Name: "hcm", ConfigType: &listener.Filter_TypedConfig{TypedConfig: bad}}},
	}}}
	if err := l.ValidateAll(); err != nil {
		t.Fatalf("the listener itself should pass ValidateAll: %v", err)
	}
	err = validateAll(l)
	if err == nil || !strings.Contains(err.Error(), "HttpConnectionManager") {
		t.Fatalf("validateAll(listener with an invalid HCM) = %v, want the HCM's error", err)
	}
}

func TestAnyFieldsSkipsWhatCannotHoldAnAny(t *testing.T) {
	var names []string
	for _, fd := range anyFields((&endpoint.LbEndpoint{}).ProtoReflect().Descriptor()) {
		names = append(names, string(fd.Name()))
	}
	// The endpoint (an address) cannot hold an Any; metadata (typed_filter_metadata) can.
	if strings.Join(names, ",") != "metadata" {
		t.Fatalf("LbEndpoint fields that may hold an Any: %v, want [metadata]", names)
	}
}
