package localproc

import (
	"strings"
	"sync"
)

// Group stops processes in the reverse order of their start: what depends on a process stops before it.
// The zero Group is empty and ready to use.
type Group struct {
	mu    sync.Mutex
	procs []*Process
}

func (g *Group) Add(p *Process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs = append(g.procs, p)
}

// Processes is the processes added so far, in the order of their start.
func (g *Group) Processes() []*Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Process(nil), g.procs...)
}

// StopAll stops every process added so far, the last started first.
func (g *Group) StopAll() {
	ps := g.Processes()
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].Stop()
	}
}

// EnvWithout is env less the variables starting with any prefix: CONSUL_HTTP_ADDR and friends, or
// GRPC_XDS_BOOTSTRAP, would point a child at another agent or server than its parent's.
func EnvWithout(env []string, prefixes ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
