package registry

import (
	"maps"
	"slices"
	"strings"
)

// buildParts is what a state was built from, kept so that the next state can start from it: with 10,000
// upstreams, building a state from scratch costs ~100 ms, and most changes touch one upstream.
type buildParts struct {
	mergeWarnings  []Warning          // domain conflicts between upstreams (merge)
	contested      map[string]bool    // the upstreams on either side of those conflicts
	healthWarnings map[string]Warning // by upstream: applyHealth gives at most one per upstream
	digests        []upstreamDigest   // of each of the state's upstreams, in order, for the content hash
}

// maxChangedForParts bounds the upstreams a state is rebuilt from parts for; beyond it a full build is
// about as cheap and certainly right.
const maxChangedForParts = 256

// build makes the state for change c: from the current state's parts when c (with the health verdicts
// stored since) touches a few upstreams in a way that cannot affect the others, else from scratch. A test
// checks the two against each other over random sequences of writes, discoveries and verdicts.
func (s *Store) build(rev uint64, c Change) (*State, *buildParts) {
	if st, parts, ok := s.buildChanged(rev, c); ok {
		return st, parts
	}
	return s.buildFull(rev, c)
}

func (s *Store) buildFull(rev uint64, c Change) (*State, *buildParts) {
	all := Discovered{}
	for _, src := range sortedKeys(s.discovered) {
		for name, ds := range s.discovered[src] {
			all[name] = appendDiscovered(all[name], ds)
		}
	}
	ups, mergeWarnings, contested := merge(s.cfg, all, s.configSource())
	healthWarnings := applyHealth(ups, s.health)
	parts := &buildParts{mergeWarnings: mergeWarnings, contested: contested,
		healthWarnings: make(map[string]Warning, len(healthWarnings))}
	for _, w := range healthWarnings {
		parts.healthWarnings[strings.TrimPrefix(w.Object, "upstream/")] = w
	}
	snippets, snippetWarnings := activeSnippets(s.cfg.Snippets, ups)
	warnings := slices.Concat(s.cfgWarns, mergeWarnings, healthWarnings, snippetWarnings)
	parts.digests = make([]upstreamDigest, len(ups))
	for i := range ups {
		parts.digests[i] = digestUpstream(&ups[i])
	}
	return &State{Revision: rev, Hash: contentHash(parts.digests, snippets), Upstreams: ups, Snippets: snippets, Warnings: warnings, Change: c}, parts
}

// appendDiscovered adds one source's finding to what earlier sources (in name order) found.
func appendDiscovered(acc, ds DiscoveredService) DiscoveredService {
	acc.Servers = append(acc.Servers, ds.Servers...)
	if len(acc.Domains) == 0 {
		acc.Domains = ds.Domains
	}
	return acc
}

// buildChanged rebuilds only the upstreams c names (publish adds those with new health verdicts), keeping
// the others from the current state. It applies when every such upstream exists before and after, keeps
// its domains and was on neither side of a domain conflict (so which upstreams are served, and who serves
// which domain, cannot change), and no Lua snippet is configured (snippets are checked against the
// upstreams).
func (s *Store) buildChanged(rev uint64, c Change) (*State, *buildParts, bool) {
	cur, prev := s.current, s.parts
	if cur == nil || prev == nil || len(c.Upstreams) == 0 || len(c.Snippets) > 0 || len(s.cfg.Snippets) > 0 {
		return nil, nil, false
	}
	names := c.Upstreams
	if len(names) > maxChangedForParts {
		return nil, nil, false
	}
	for _, name := range names {
		if prev.contested[name] { // a domain conflict's outcome can depend on it: which side wins, and why
			return nil, nil, false
		}
	}
	ups := slices.Clone(cur.Upstreams)
	healthWarnings := maps.Clone(prev.healthWarnings)
	digests := slices.Clone(prev.digests)
	for _, name := range names {
		i, found := slices.BinarySearchFunc(ups, name, func(u Upstream, n string) int { return strings.Compare(u.Name, n) })
		next, exists := s.mergedUpstream(name)
		if !found || !exists || !slices.Equal(ups[i].EffectiveDomains(), next.EffectiveDomains()) {
			return nil, nil, false
		}
		one := []Upstream{next}
		delete(healthWarnings, name)
		for _, w := range applyHealth(one, s.health) {
			healthWarnings[name] = w
		}
		ups[i] = one[0]
		digests[i] = digestUpstream(&ups[i])
	}
	var orderedHealth []Warning // in upstream order, as a full build gives them
	if len(healthWarnings) > 0 {
		for i := range ups {
			if w, ok := healthWarnings[ups[i].Name]; ok {
				orderedHealth = append(orderedHealth, w)
			}
		}
	}
	snippets, snippetWarnings := activeSnippets(s.cfg.Snippets, ups)
	parts := &buildParts{mergeWarnings: prev.mergeWarnings, contested: prev.contested, healthWarnings: healthWarnings,
		digests: digests}
	warnings := slices.Concat(s.cfgWarns, prev.mergeWarnings, orderedHealth, snippetWarnings)
	s.partsBuilds++
	return &State{Revision: rev, Hash: contentHash(digests, snippets), Upstreams: ups, Snippets: snippets, Warnings: warnings, Change: c}, parts, true
}

// mergedUpstream is the named upstream as a full build would merge it, before health, and false when
// neither the configuration nor any discovery source has it.
func (s *Store) mergedUpstream(name string) (Upstream, bool) {
	u, configured := s.cfg.Upstreams[name]
	var disc DiscoveredService
	found := false
	for _, src := range sortedKeys(s.discovered) {
		if ds, ok := s.discovered[src][name]; ok {
			disc, found = appendDiscovered(disc, ds), true
		}
	}
	if !configured && !found {
		return Upstream{}, false
	}
	return mergeUpstream(name, u, configured, disc, s.configSource()), true
}

func (s *Store) markHealthDirty(name string) {
	if s.healthDirty == nil {
		s.healthDirty = map[string]bool{}
	}
	s.healthDirty[name] = true
}
