package slardar

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/dynup/dynup/registry"
)

// decodeServers reads one server list. level < 0 means the single-level form, where each server may carry
// its own "level" (as GET writes it); otherwise every server is placed at that level.
//
// null clears the list in the single-level form: JSON null resets a field, and an upstream whose servers
// all come from discovery is written by GET with "servers": null.
func decodeServers(field string, raw json.RawMessage, level int) ([]registry.Server, error) {
	if level < 0 && isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if !isKind(raw, '[') || json.Unmarshal(raw, &items) != nil {
		return nil, &registry.FieldError{Field: field, Msg: "servers invalid"}
	}
	if len(items) == 0 {
		return nil, &registry.FieldError{Field: field, Msg: "can not update empty level"}
	}
	servers := make([]registry.Server, 0, len(items))
	for i, item := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, err := decodeServer(f, item)
		if err != nil {
			return nil, err
		}
		if level >= 0 {
			if s.Level != 0 && s.Level != level || s.Backup && level == 0 {
				return nil, &registry.FieldError{Field: f + ".level",
					Msg: fmt.Sprintf("contradicts the server's place in cluster[%d] (the level is the list index)", level)}
			}
			s.Level, s.Backup = level, level > 0
		}
		servers = append(servers, s)
	}
	return servers, nil
}

func decodeServer(field string, raw json.RawMessage) (registry.Server, error) {
	var s registry.Server
	var keys map[string]json.RawMessage
	if !isKind(raw, '{') || json.Unmarshal(raw, &keys) != nil {
		return s, &registry.FieldError{Field: field, Msg: "servers invalid"}
	}
	for _, k := range []string{"host", "port"} {
		if v, ok := keys[k]; !ok || isNull(v) {
			return s, &registry.FieldError{Field: field, Msg: "no server.host nor server.port found"}
		}
	}
	if err := strictInto(raw, field, &s); err != nil {
		return s, err
	}
	// GET shows where a server came from and its health; the store decides both, so posted-back values
	// mean nothing.
	s.Source, s.Health = "", nil
	return s, nil
}

// decodeCluster reads checkups' level list; level i (0 is the primary) becomes Server.Level i.
func decodeCluster(raw json.RawMessage) ([]registry.Server, error) {
	var levels []json.RawMessage
	if !isKind(raw, '[') || json.Unmarshal(raw, &levels) != nil {
		// checkups also names clusters ({"dc1": ...}) for per-request ordering, which Envoy cannot do.
		return nil, &registry.FieldError{Field: "cluster", Msg: "cluster invalid: want a list of levels, e.g. [{\"servers\":[...]}]"}
	}
	if len(levels) == 0 {
		return nil, &registry.FieldError{Field: "cluster", Msg: "can not update empty level"}
	}
	var servers []registry.Server
	for i, level := range levels {
		f := fmt.Sprintf("cluster[%d]", i)
		var keys map[string]json.RawMessage
		if !isKind(level, '{') || json.Unmarshal(level, &keys) != nil || len(keys) == 0 {
			return nil, &registry.FieldError{Field: f, Msg: "can not update empty level"}
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			if k != "servers" {
				return nil, &registry.FieldError{Field: f, Msg: fmt.Sprintf("unknown field %q", k)}
			}
		}
		got, err := decodeServers(f+".servers", keys["servers"], i)
		if err != nil {
			return nil, err
		}
		servers = append(servers, got...)
	}
	return servers, nil
}
