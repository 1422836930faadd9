package slardar

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/dynup/dynup/registry"
)

// heartbeatKeys are checkups' health-check options; together they edit one registry.HealthCheck.
var heartbeatKeys = []string{"typ", "timeout", "enable", "sensibility", "http_opts"}

// legacyKeys are the checkups keys that differ from dynup's. "keepalive" and "protected" are spelled the
// same in both and are decoded as dynup fields.
var legacyKeys = append([]string{"mode", "try", "try_timeout"}, heartbeatKeys...)

// applyLegacy maps checkups' keys onto the model. Each edits only its own part of a field, because
// Slardar keeps the options a body leaves out (a body with only "timeout" must not drop the http probe).
func applyLegacy(u *registry.Upstream, keys map[string]json.RawMessage) error {
	if raw, ok := keys["mode"]; ok {
		var mode *string
		if err := strictInto(raw, "mode", &mode); err != nil {
			return err
		}
		u.LB = nil
		if mode != nil {
			lb, err := lbFromMode(*mode)
			if err != nil {
				return err
			}
			u.LB = lb
		}
	}
	if raw, ok := keys["try"]; ok {
		r := registry.RetryPolicy{}
		if u.Retry != nil {
			r = *u.Retry
		}
		if err := strictInto(raw, "try", &r.Tries); err != nil {
			return err
		}
		u.Retry = nilIfZero(&r)
	}
	if raw, ok := keys["try_timeout"]; ok {
		t := registry.Timeouts{}
		if u.Timeouts != nil {
			t = *u.Timeouts
		}
		if err := strictInto(raw, "try_timeout", &t.Request); err != nil {
			return err
		}
		u.Timeouts = nilIfZero(&t)
	}
	return applyHeartbeat(u, keys)
}

// lbFromMode maps checkups' "mode". nil, "" and "wrr" are all checkups' default weighted round robin.
func lbFromMode(mode string) (*registry.LoadBalancing, error) {
	ring := func(keys ...registry.HashKey) *registry.LoadBalancing {
		return &registry.LoadBalancing{Policy: "ring_hash", HashKeys: keys}
	}
	switch mode {
	case "", "rr", "wrr":
		return &registry.LoadBalancing{Policy: "round_robin"}, nil
	case "hash", "url_hash":
		// Slardar passes no hash_key, so checkups hashes the URI; :path also includes the query string.
		return ring(registry.HashKey{Path: true}), nil
	case "ip_hash":
		return ring(registry.HashKey{SourceIP: true}), nil
	case "header_hash":
		return ring(registry.HashKey{Header: "x-hash-key", Terminal: true}, registry.HashKey{Path: true}), nil
	case "least_request", "speed":
		return &registry.LoadBalancing{Policy: "least_request"}, nil
	}
	return nil, &registry.FieldError{Field: "mode",
		Msg: fmt.Sprintf("%q is not a balancing mode (one of rr, wrr, hash, url_hash, ip_hash, header_hash, least_request, speed)", mode)}
}

// checkTypes maps checkups' "typ" onto registry health-check types.
var checkTypes = map[string]string{"general": "tcp", "http": "http", "redis": "redis"}

func applyHeartbeat(u *registry.Upstream, keys map[string]json.RawMessage) error {
	if !slices.ContainsFunc(heartbeatKeys, func(k string) bool { _, ok := keys[k]; return ok }) {
		return nil
	}
	hc := registry.HealthCheck{}
	if u.HealthCheck != nil {
		hc = *u.HealthCheck
	}
	if raw, ok := keys["typ"]; ok {
		var typ *string
		if err := strictInto(raw, "typ", &typ); err != nil {
			return err
		}
		hc.Type = ""
		if typ != nil {
			t, ok := checkTypes[*typ]
			switch {
			case *typ == "mysql":
				return &registry.FieldError{Field: "typ", Msg: `"mysql" is not supported (Envoy has no MySQL check); use "general" for a TCP connect check`}
			case !ok:
				return &registry.FieldError{Field: "typ", Msg: fmt.Sprintf("%q is not one of %s", *typ, joinKeys(checkTypes))}
			}
			hc.Type = t
		}
	}
	if raw, ok := keys["timeout"]; ok {
		if err := strictInto(raw, "timeout", &hc.Timeout); err != nil {
			return err
		}
	}
	if raw, ok := keys["enable"]; ok {
		if err := strictInto(raw, "enable", &hc.Enabled); err != nil {
			return err
		}
	}
	if raw, ok := keys["sensibility"]; ok {
		if err := strictInto(raw, "sensibility", &hc.UnhealthyThreshold); err != nil {
			return err
		}
	}
	if raw, ok := keys["http_opts"]; ok {
		if err := applyHTTPOpts(&hc, raw); err != nil {
			return err
		}
	}
	if hc.Type == "" {
		hc.Type = "tcp" // checkups' default typ is "general"
	}
	if hc.Type == "http" && (hc.HTTP == nil || hc.HTTP.Path == "") {
		// Without a query checkups only connects, and Envoy's HTTP check needs a path: this is a TCP check.
		hc.Type = "tcp"
	}
	u.HealthCheck = &hc
	return nil
}

// httpOpts is checkups' http_opts. Statuses keys are strings, as JSON (and so checkups) has them.
type httpOpts struct {
	Query    *string         `json:"query"`
	Statuses map[string]bool `json:"statuses"`
}

// applyHTTPOpts replaces the probe request and its bad statuses, which http_opts describes as a whole.
func applyHTTPOpts(hc *registry.HealthCheck, raw json.RawMessage) error {
	var opts *httpOpts
	if err := strictInto(raw, "http_opts", &opts); err != nil {
		return err
	}
	hc.HTTP, hc.Headers = nil, nil
	if opts == nil {
		return nil
	}
	h := registry.HTTPCheck{}
	if opts.Query != nil && *opts.Query != "" {
		probe, headers, err := ParseProbe(*opts.Query)
		if err != nil {
			return &registry.FieldError{Field: "http_opts.query", Msg: err.Error()}
		}
		h, hc.Headers = probe, headers
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Statuses)) {
		code, err := strconv.Atoi(k)
		if err != nil {
			return &registry.FieldError{Field: "http_opts.statuses", Msg: fmt.Sprintf("%q is not an HTTP status", k)}
		}
		// checkups fails a probe only on statuses mapped to false; true is the same as not listed.
		if !opts.Statuses[k] {
			h.BadStatuses = append(h.BadStatuses, code)
		}
	}
	slices.Sort(h.BadStatuses)
	hc.HTTP = nilIfZero(&h)
	return nil
}

// nilIfZero keeps GET output free of empty option objects that the legacy keys would otherwise leave.
func nilIfZero[T any](v *T) *T {
	if reflect.ValueOf(*v).IsZero() {
		return nil
	}
	return v
}

func joinKeys(m map[string]string) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
