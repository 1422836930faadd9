// Package slardar reads the JSON body of Slardar's admin API (POST/PUT /upstream/<name>) into dynup's
// upstream model.
//
// A body is Slardar's single-level form {"servers":[...], ...options} or its multi-level form
// {"cluster":[{"servers":[...]}, ...], ...options}. Options may use checkups' legacy keys (mode, typ,
// http_opts, ...) or dynup's own field names, so that what GET returns can be posted back unchanged.
package slardar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/dynup/dynup/registry"
)

// dynupFields are registry.Upstream's own keys, each replacing its whole field. "servers" is not here
// because it needs Slardar's per-server checks and wording.
func dynupFields(u *registry.Upstream) map[string]any {
	return map[string]any{
		"domains": &u.Domains, "lb": &u.LB, "keepalive": &u.Keepalive, "connection": &u.Connection,
		"timeouts": &u.Timeouts, "retry": &u.Retry, "health_check": &u.HealthCheck, "passive": &u.Passive,
		"protected": &u.Protected, "routes": &u.Routes,
	}
}

// overlaps pairs checkups keys with the dynup key that owns the same field. Accepting both would make the
// result depend on an arbitrary precedence, so a body must pick one spelling.
var overlaps = []struct {
	seed  []string
	dynup string
	what  string
}{
	{[]string{"mode"}, "lb", "load balancing"},
	{heartbeatKeys, "health_check", "health check"},
	{[]string{"try"}, "retry", "number of tries"},
	{[]string{"try_timeout"}, "timeouts", "request timeout"},
}

// Decode reads body as an update of the upstream name on top of existing (nil for a new upstream).
//
// Slardar keeps the options a body does not mention, and so does Decode: each top-level key present
// replaces its field (JSON null resets it to the default), absent keys keep their existing value, and
// "servers" or "cluster" replace all servers. The result shares no slice with existing; nested option
// structs the body leaves alone are shared, so neither side may modify them in place.
//
// Errors are *registry.FieldError, worded as Slardar worded them where it had a check. The caller
// normalizes and validates the result.
func Decode(name string, body []byte, existing *registry.Upstream) (registry.Upstream, error) {
	keys, err := topLevel(body)
	if err != nil {
		return registry.Upstream{}, err
	}
	if err := checkKeys(name, keys); err != nil {
		return registry.Upstream{}, err
	}

	u := registry.Upstream{Name: name}
	if existing != nil {
		u = *existing
		u.Name = name
		// The store normalizes its input in place; a shared backing array would change stored state.
		u.Domains = slices.Clone(u.Domains)
		u.Servers = slices.Clone(u.Servers)
		u.Routes = slices.Clone(u.Routes)
	}
	fields := dynupFields(&u)
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if raw, ok := keys[key]; ok {
			if err := strictInto(raw, key, fields[key]); err != nil {
				return registry.Upstream{}, err
			}
		}
	}
	if raw, ok := keys["servers"]; ok {
		if u.Servers, err = decodeServers("servers", raw, -1); err != nil {
			return registry.Upstream{}, err
		}
	}
	if raw, ok := keys["cluster"]; ok {
		if u.Servers, err = decodeCluster(raw); err != nil {
			return registry.Upstream{}, err
		}
	}
	if err := applyLegacy(&u, keys); err != nil {
		return registry.Upstream{}, err
	}
	return u, nil
}

// topLevel splits the body into its keys, with Slardar's three body checks.
func topLevel(body []byte) (map[string]json.RawMessage, error) {
	var whole json.RawMessage
	if err := json.Unmarshal(body, &whole); err != nil {
		return nil, &registry.FieldError{Msg: "decode body error: " + err.Error()}
	}
	if !isKind(whole, '{') {
		return nil, &registry.FieldError{Msg: "body invalid"}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(whole, &keys); err != nil {
		return nil, &registry.FieldError{Msg: "decode body error: " + err.Error()}
	}
	if len(keys) == 0 {
		return nil, &registry.FieldError{Msg: "can not set empty upstream"}
	}
	return keys, nil
}

// checkKeys rejects what no field takes, before anything is decoded, so a typo never half-applies.
func checkKeys(name string, keys map[string]json.RawMessage) error {
	// rejected_by is what GET /upstream/{name} adds about nodes that NACKed it: read-only, so accepted and
	// ignored, which keeps "edit GET's answer and send it back" working.
	known := map[string]bool{"name": true, "servers": true, "cluster": true, "rejected_by": true}
	for k := range dynupFields(&registry.Upstream{}) {
		known[k] = true
	}
	for _, k := range legacyKeys {
		known[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !known[k] {
			return &registry.FieldError{Msg: fmt.Sprintf("unknown field %q", k)}
		}
	}
	if raw, ok := keys["name"]; ok && !isNull(raw) {
		var got string
		if err := strictInto(raw, "name", &got); err != nil {
			return err
		}
		if got != name {
			return &registry.FieldError{Field: "name", Msg: fmt.Sprintf("%q does not match the upstream %q named in the URL", got, name)}
		}
	}
	if _, ok := keys["servers"]; ok {
		if _, ok := keys["cluster"]; ok {
			return &registry.FieldError{Field: "cluster", Msg: `give either "servers" (one level) or "cluster" (levels), not both`}
		}
	}
	for _, o := range overlaps {
		if _, ok := keys[o.dynup]; !ok {
			continue
		}
		for _, s := range o.seed {
			if _, ok := keys[s]; ok {
				return &registry.FieldError{Field: s, Msg: fmt.Sprintf("%q and %q both set the %s; give one of them", s, o.dynup, o.what)}
			}
		}
	}
	return nil
}

// strictInto decodes raw into a fresh value and stores it in *dst (dst is a pointer), so null resets
// *dst to its zero value where plain json.Unmarshal would leave a non-pointer unchanged. Unknown nested
// keys are errors.
func strictInto(raw json.RawMessage, field string, dst any) error {
	v := reflect.New(reflect.TypeOf(dst).Elem())
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		return jsonError(field, err)
	}
	reflect.ValueOf(dst).Elem().Set(v.Elem())
	return nil
}

// jsonError turns a decoding error into a FieldError that points at the offending key.
func jsonError(field string, err error) *registry.FieldError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field != "" {
			field += "." + typeErr.Field
		}
		return &registry.FieldError{Field: field, Msg: fmt.Sprintf("want %s, got %s", typeErr.Type, typeErr.Value)}
	}
	return &registry.FieldError{Field: field, Msg: strings.TrimPrefix(err.Error(), "json: ")}
}

func isKind(raw json.RawMessage, open byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == open
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
