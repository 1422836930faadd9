package publish

import (
	"reflect"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/translate"
)

// buildEndpoints is the endpoint path: when st differs from the state prev was built from only in the
// servers of some upstreams, only those upstreams are translated, and the snapshot is prev's with their
// clusters and endpoint assignments replaced. Listeners and routes do not depend on servers, so they are
// shared unchanged, and the cache sends streams only what changed. ok is false when the path does not
// apply and a full translation must be made.
//
// Translating a state of just the changed upstreams gives exactly their clusters and assignments: both
// are built from one upstream and the group alone (translate.Translate's per-upstream step), and each is
// validated on its own there. A test checks the result against a full translation.
func (p *Publisher) buildEndpoints(st *registry.State, g translate.Group, prev *built) (*built, string, bool) {
	changed, ok := serverChanges(prev.state, st)
	if !ok {
		return nil, "", false
	}
	if len(changed) == 0 { // nothing translation reads changed (a revision for warnings only, say)
		return &built{state: st, snap: prev.snap, warnings: prev.warnings, left: prev.left}, "unchanged", true
	}
	for _, u := range changed {
		if prev.left[u.Name] { // it may come back: its routes must be rebuilt
			return nil, "", false
		}
	}
	part := *st
	part.Upstreams = changed
	res, err := translate.Translate(&part, g, p.opts)
	if err != nil || len(res.Clusters) != len(changed) || len(res.Endpoints) != len(changed) {
		return nil, "", false
	}
	if len(leftOut(res.Warnings)) > 0 { // a changed upstream would be left out: its routes must go
		return nil, "", false
	}
	snap, err := prev.snap.Replace(map[string][]types.Resource{
		resource.ClusterType:  asResources(res.Clusters),
		resource.EndpointType: asResources(res.Endpoints),
	})
	if err != nil {
		return nil, "", false
	}
	return &built{state: st, snap: snap, warnings: prev.warnings, left: prev.left}, "endpoints", true
}

// serverChanges returns the upstreams of next whose servers differ from prev's, and false when anything
// else differs: another field of an upstream, the set of upstreams, or anything else translation reads.
//
// When next directly follows prev, its change record names the upstreams that may differ, and only those
// are compared; otherwise (states were coalesced) every upstream is.
func serverChanges(prev, next *registry.State) ([]registry.Upstream, bool) {
	if len(prev.Upstreams) != len(next.Upstreams) || !sameBesidesUpstreams(prev, next) {
		return nil, false
	}
	for i := range next.Upstreams {
		if prev.Upstreams[i].Name != next.Upstreams[i].Name {
			return nil, false
		}
	}
	var changed []registry.Upstream
	compare := func(a, b *registry.Upstream) bool {
		if reflect.DeepEqual(a, b) {
			return true
		}
		if !sameBesidesServers(a, b) {
			return false
		}
		changed = append(changed, *b)
		return true
	}
	if next.Revision == prev.Revision+1 && next.Change.Revision == next.Revision {
		seen := map[string]bool{}
		for _, name := range next.Change.Upstreams {
			a, okA := prev.Upstream(name)
			b, okB := next.Upstream(name)
			if okA != okB {
				return nil, false
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			if okA && !compare(a, b) {
				return nil, false
			}
		}
		slices.SortFunc(changed, func(a, b registry.Upstream) int { return strings.Compare(a.Name, b.Name) })
		return changed, true
	}
	for i := range next.Upstreams {
		if !compare(&prev.Upstreams[i], &next.Upstreams[i]) {
			return nil, false
		}
	}
	return changed, true
}

// sameBesidesUpstreams compares what translation could read from a state other than its upstreams (Lua
// snippets, and whatever is added later), ignoring what it does not read: revision, hash, change record
// and warnings.
func sameBesidesUpstreams(a, b *registry.State) bool {
	x, y := *a, *b
	x.Revision, x.Hash, x.Upstreams, x.Warnings, x.Change = 0, "", nil, nil, registry.Change{}
	y.Revision, y.Hash, y.Upstreams, y.Warnings, y.Change = 0, "", nil, nil, registry.Change{}
	return reflect.DeepEqual(x, y)
}

func sameBesidesServers(a, b *registry.Upstream) bool {
	x, y := *a, *b
	x.Servers, y.Servers = nil, nil
	return reflect.DeepEqual(x, y)
}
