package healthcheck

import (
	"time"

	"github.com/dynup/dynup/registry"
)

// Passive defaults (the seed decisions): accounting is on with checkups' window rule, max_fails 3 within
// fail_timeout 10s. max_fails 0 turns it off.
const (
	DefaultMaxFails    = 3
	DefaultFailTimeout = 10 * time.Second
)

// Passive is checkups' window rule for one server: MaxFails failures within FailTimeout take the server
// out for FailTimeout. MaxFails 0 means failures are not counted.
type Passive struct {
	MaxFails    int
	FailTimeout time.Duration
}

// Off says whether failures are not counted.
func (p Passive) Off() bool { return p.MaxFails <= 0 }

// ServerPassive is the server's own max_fails and fail_timeout, each falling back to the upstream's
// passive settings and then to the defaults. A zero fail_timeout counts as unset: a window of no time
// would never hold two failures.
func ServerPassive(u *registry.Upstream, s *registry.Server) Passive {
	p := upstreamPassive(u)
	if s.MaxFails != nil {
		p.MaxFails = *s.MaxFails
	}
	if s.FailTimeout != nil && s.FailTimeout.Duration > 0 {
		p.FailTimeout = s.FailTimeout.Duration
	}
	return p
}

// ClusterPassive is the one setting a per-cluster outlier detector (Envoy's, gRPC's) gets, since neither
// varies it per host: the smallest max_fails and the smallest fail_timeout among the servers that count
// failures, so no server is held to a looser rule than its own. It is off only when every server is off;
// an upstream without servers gets its own settings.
func ClusterPassive(u *registry.Upstream) Passive {
	if len(u.Servers) == 0 {
		return upstreamPassive(u)
	}
	var out Passive
	for i := range u.Servers {
		p := ServerPassive(u, &u.Servers[i])
		if p.Off() {
			continue
		}
		if out.Off() || p.MaxFails < out.MaxFails {
			out.MaxFails = p.MaxFails
		}
		if out.FailTimeout == 0 || p.FailTimeout < out.FailTimeout {
			out.FailTimeout = p.FailTimeout
		}
	}
	return out
}

func upstreamPassive(u *registry.Upstream) Passive {
	p := Passive{MaxFails: DefaultMaxFails, FailTimeout: DefaultFailTimeout}
	if u.Passive != nil {
		if u.Passive.MaxFails != nil {
			p.MaxFails = *u.Passive.MaxFails
		}
		if u.Passive.FailTimeout != nil && u.Passive.FailTimeout.Duration > 0 {
			p.FailTimeout = u.Passive.FailTimeout.Duration
		}
	}
	return p
}

// Protected says whether the upstream keeps one server in service when all have failed (default true).
func Protected(u *registry.Upstream) bool { return u.Protected == nil || *u.Protected }
