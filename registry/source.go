package registry

import "time"

// SourceStatus is what the admin API shows about one source: whether it is in sync, how far it got, and its
// last error. A source that fails keeps its last good contribution in the store.
type SourceStatus struct {
	Name        string    `json:"name"` // e.g. consul-kv, consul-catalog, consul-health/web
	LastIndex   uint64    `json:"last_index,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failures    int       `json:"consecutive_failures"`
}
