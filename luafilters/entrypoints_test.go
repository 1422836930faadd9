package luafilters

import (
	"errors"
	"slices"
	"testing"
)

// EntryPoints reports what a valid snippet defines, in Envoy's order, and refuses what Validate refuses.
func TestEntryPoints(t *testing.T) {
	for src, want := range map[string][]string{
		"function envoy_on_request(h) end":                                    {"envoy_on_request"},
		"function envoy_on_response(h) end":                                   {"envoy_on_response"},
		"function envoy_on_response(h) end\nfunction envoy_on_request(h) end": {"envoy_on_request", "envoy_on_response"},
	} {
		got, err := EntryPoints(src, DefaultLimits())
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v %v, want %v", src, got, err, want)
		}
	}
	_, err := EntryPoints("function envoy_on_request(h)\n  ngx.exit(403)\nend", DefaultLimits())
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Line != 2 {
		t.Fatalf("ngx.exit: %v, want a validation error on line 2", err)
	}
}
