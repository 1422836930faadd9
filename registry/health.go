package registry

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"
)

// ServerKey names one server of one upstream.
type ServerKey struct {
	Upstream string
	Host     string
	Port     int
}

func (k ServerKey) String() string {
	return k.Upstream + "/" + net.JoinHostPort(k.Host, strconv.Itoa(k.Port))
}

// Verdict is one health source's judgement that a server is unhealthy. Sources only report the servers
// they take out; a server missing from a source's set is healthy as far as that source knows.
type Verdict struct {
	Reason string
	Since  time.Time
}

// ServerHealth is set on a server of a published State when a health source took it out. Set by the store,
// never by users.
type ServerHealth struct {
	Status string    `json:"status"` // "unhealthy"
	Source string    `json:"source"` // e.g. "active", "feedback"
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// SetHealth replaces the unhealthy servers one health source (the active checker, the failure tracker)
// reports. Verdicts for servers the state does not have are kept but have no effect, so a source need not
// race with server removals. Returns the new state, or the current one if nothing visible changed.
func (s *Store) SetHealth(source string, unhealthy map[ServerKey]Verdict) *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.health == nil {
		s.health = map[string]map[ServerKey]Verdict{}
	}
	old := s.health[source]
	// changed: upstreams with a verdict added, removed or with a new reason, which is worth a new state.
	// differs: also those whose verdict only has a new time, which the next state must still apply.
	var changed, differs []string
	for k, v := range unhealthy {
		if ov, ok := old[k]; !ok || ov.Reason != v.Reason {
			changed = append(changed, k.Upstream)
		} else if ov != v {
			differs = append(differs, k.Upstream)
		}
	}
	for k := range old {
		if _, ok := unhealthy[k]; !ok {
			changed = append(changed, k.Upstream)
		}
	}
	if len(changed) == 0 {
		return s.current
	}
	for _, name := range slices.Concat(changed, differs) {
		s.markHealthDirty(name)
	}
	s.health[source] = unhealthy
	slices.Sort(changed)
	changed = slices.Compact(changed)
	// Only upstreams whose published servers actually change count as changed (a protected upstream may
	// keep its servers when one more is reported), but a changed warning is still worth a new state.
	next, _ := s.build(s.current.Revision+1, Change{Upstreams: sortedKeys(s.healthDirty)})
	warningsChanged := !sameJSON(next.Warnings, s.current.Warnings)
	changed = slices.DeleteFunc(changed, func(name string) bool {
		if warningsChanged {
			return false
		}
		a, _ := s.current.Upstream(name)
		b, _ := next.Upstream(name)
		return sameJSON(a, b)
	})
	if len(changed) == 0 {
		return s.current
	}
	return s.publish(Change{Revision: s.current.Revision + 1, Source: "health/" + source, Upstreams: changed})
}

// applyHealth marks servers that a health source took out. Unless the upstream turned protection off, the
// servers are never all taken out: if every server that is not down would be unhealthy, the one whose
// verdict is newest stays in (it was the last to answer), as checkups' "protected" keeps one server usable.
func applyHealth(ups []Upstream, health map[string]map[ServerKey]Verdict) []Warning {
	if len(health) == 0 {
		return nil
	}
	var warnings []Warning
	for i := range ups {
		u := &ups[i]
		servers := slices.Clone(u.Servers)
		live, out, newest := 0, 0, -1
		for j := range servers {
			s := &servers[j]
			if s.Down {
				continue
			}
			live++
			k := ServerKey{Upstream: u.Name, Host: s.Host, Port: s.Port}
			for _, src := range sortedKeys(health) {
				v, ok := health[src][k]
				if !ok {
					continue
				}
				if s.Health == nil || v.Since.After(s.Health.Since) {
					s.Health = &ServerHealth{Status: "unhealthy", Source: src, Reason: v.Reason, Since: v.Since}
				}
			}
			if s.Health != nil {
				out++
				if newest < 0 || s.Health.Since.After(servers[newest].Health.Since) {
					newest = j
				}
			}
		}
		if out == 0 {
			continue
		}
		if out == live && (u.Protected == nil || *u.Protected) {
			s := &servers[newest]
			warnings = append(warnings, Warning{Object: "upstream/" + u.Name, Msg: fmt.Sprintf(
				"every server is unhealthy; %s kept in service because the upstream is protected",
				net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))})
			s.Health = nil
		}
		u.Servers = servers
	}
	return warnings
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
