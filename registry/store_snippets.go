package registry

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dynup/dynup/luafilters"
)

// SnippetDraft is a new version to stage. A nil AppliesTo or Order keeps the previous version's (for a new
// snippet: DefaultPlacement and order 0).
type SnippetDraft struct {
	Source    string
	AppliesTo *Placement
	Order     *int
}

// StageSnippet validates the draft and stores it as the newest version of the named snippet, without
// activating it: what Envoys run does not change. A source that fails validation returns the
// *luafilters.ValidationError and stores nothing.
func (s *Store) StageSnippet(ctx context.Context, name string, d SnippetDraft, source string) (*State, SnippetVersion, error) {
	if err := ValidateName(name); err != nil {
		return nil, SnippetVersion{}, err
	}
	if d.AppliesTo != nil {
		p := *d.AppliesTo
		p.Upstreams, p.Domains = slices.Clone(p.Upstreams), slices.Clone(p.Domains)
		p.Normalize()
		if err := p.Validate(); err != nil {
			return nil, SnippetVersion{}, err
		}
		d.AppliesTo = &p
	}
	// Outside the store's lock: a run may take up to the validator's time limit.
	entry, err := s.lua.check(d.Source, luafilters.DefaultLimits())
	if err != nil {
		return nil, SnippetVersion{}, err
	}
	var staged SnippetVersion
	st, err := s.update(ctx, source, nil, func(cfg Config) (Change, error) {
		sn, exists := cfg.Snippets[name]
		v := SnippetVersion{Version: 1, Source: d.Source, MD5: SourceMD5(d.Source), CreatedAt: time.Now().UTC(),
			Validated: true, EntryPoints: entry}
		switch {
		case d.AppliesTo != nil:
			v.AppliesTo = *d.AppliesTo
		case exists && len(sn.Versions) > 0:
			v.AppliesTo = sn.Versions[len(sn.Versions)-1].AppliesTo
		default:
			p, ok := DefaultPlacement(name)
			if !ok {
				return Change{}, fieldErr("applies_to", `a new snippet needs to say where it applies: {"all":true}, or "upstreams" and/or "domains" (or name it %s<host>)`, ScriptPrefix)
			}
			v.AppliesTo = p
		}
		switch {
		case d.Order != nil:
			v.Order = *d.Order
		case exists && len(sn.Versions) > 0:
			v.Order = sn.Versions[len(sn.Versions)-1].Order
		}
		if !exists {
			sn = Snippet{Name: name}
		}
		if n := len(sn.Versions); n > 0 {
			v.Version = sn.Versions[n-1].Version + 1
		}
		sn.Versions = trimVersions(append(slices.Clone(sn.Versions), v), sn.Active)
		cfg.Snippets[name] = sn
		staged = v
		return Change{Snippets: []string{name}}, nil
	})
	return st, staged, err
}

// trimVersions keeps at most MaxSnippetVersions, dropping the oldest inactive ones.
func trimVersions(vs []SnippetVersion, active int) []SnippetVersion {
	for len(vs) > MaxSnippetVersions {
		i := slices.IndexFunc(vs, func(v SnippetVersion) bool { return v.Version != active })
		vs = slices.Delete(vs, i, i+1)
	}
	return vs
}

// ActivateSnippet makes a version the one Envoys run: the staged one when version is 0, else the numbered
// one (an older one is a rollback). Activating the version already active changes nothing.
func (s *Store) ActivateSnippet(ctx context.Context, name string, version int, source string) (*State, SnippetVersion, error) {
	var activated SnippetVersion
	unchanged := false
	st, err := s.update(ctx, source, nil, func(cfg Config) (Change, error) {
		sn, ok := cfg.Snippets[name]
		if !ok {
			return Change{}, &NotFoundError{Msg: fmt.Sprintf("snippet %s not found", name)}
		}
		var v *SnippetVersion
		if version == 0 {
			if v, ok = sn.Staged(); !ok {
				return Change{}, &ConflictError{Msg: fmt.Sprintf(
					"snippet %s has no staged version (version %d is active); stage one with POST, or activate an older one with ?version=N", name, sn.Active)}
			}
		} else if v, ok = sn.Version(version); !ok {
			return Change{}, &NotFoundError{Msg: fmt.Sprintf("snippet %s has no version %d (kept: %s)", name, version, versionList(sn))}
		}
		if !v.Validated {
			return Change{}, fieldErr("version", "version %d of snippet %s fails validation, so it cannot run: %s", v.Version, name, v.Error)
		}
		if v.Version == sn.Active {
			activated, unchanged = *v, true
			return Change{}, errUnchanged
		}
		sn.Versions = slices.Clone(sn.Versions)
		v, _ = sn.Version(v.Version)
		v.ActivatedAt = time.Now().UTC()
		sn.Active = v.Version
		cfg.Snippets[name] = sn
		activated = *v
		return Change{Snippets: []string{name}}, nil
	})
	if unchanged {
		return s.State(), activated, nil
	}
	return st, activated, err
}

// ActivateAllStaged activates every snippet's staged version in one change (Slardar's PUT /lua). Staged
// versions that fail validation stay staged. With nothing to activate it changes nothing.
func (s *Store) ActivateAllStaged(ctx context.Context, source string) (*State, []string, error) {
	var activated []string
	st, err := s.update(ctx, source, nil, func(cfg Config) (Change, error) {
		now := time.Now().UTC()
		for _, name := range sortedKeys(cfg.Snippets) {
			sn := cfg.Snippets[name]
			staged, ok := sn.Staged()
			if !ok || !staged.Validated {
				continue
			}
			sn.Versions = slices.Clone(sn.Versions)
			sn.Versions[len(sn.Versions)-1].ActivatedAt = now
			sn.Active = staged.Version
			cfg.Snippets[name] = sn
			activated = append(activated, name)
		}
		if len(activated) == 0 {
			return Change{}, errUnchanged
		}
		return Change{Snippets: activated}, nil
	})
	return st, activated, err
}

func versionList(sn Snippet) string {
	out := ""
	for i, v := range sn.Versions {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprint(v.Version)
	}
	return out
}

// DeleteSnippet removes a snippet with all its versions; Envoys stop running it.
func (s *Store) DeleteSnippet(ctx context.Context, name, source string) (*State, error) {
	return s.update(ctx, source, nil, func(cfg Config) (Change, error) {
		if _, ok := cfg.Snippets[name]; !ok {
			return Change{}, &NotFoundError{Msg: fmt.Sprintf("snippet %s not found", name)}
		}
		delete(cfg.Snippets, name)
		return Change{Snippets: []string{name}}, nil
	})
}

// Snippet returns the stored snippet with all its versions.
func (s *Store) Snippet(name string) (Snippet, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.cfg.Snippets[name]
	return sn, ok
}

// Snippets returns every stored snippet, by name.
func (s *Store) Snippets() []Snippet {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Snippet, 0, len(s.cfg.Snippets))
	for _, sn := range s.cfg.Snippets {
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// activeSnippets lists what Envoys run, in order (Order, then name). A snippet whose active version is
// missing or fails validation (a hand edit in Consul KV, a stricter validator after an upgrade) is dropped
// with a warning; the rest of the state stands.
func activeSnippets(snippets map[string]Snippet, ups []Upstream) ([]ActiveSnippet, []Warning) {
	var out []ActiveSnippet
	var warnings []Warning
	for _, name := range sortedKeys(snippets) {
		sn := snippets[name]
		object := "snippet/" + name
		if staged, ok := sn.Staged(); ok && !staged.Validated {
			warnings = append(warnings, Warning{Object: object,
				Msg: fmt.Sprintf("staged version %d fails validation and cannot be activated: %s", staged.Version, staged.Error)})
		}
		if sn.Active == 0 {
			continue
		}
		v, ok := sn.Version(sn.Active)
		switch {
		case !ok:
			warnings = append(warnings, Warning{Object: object, Msg: fmt.Sprintf("dropped: active version %d does not exist", sn.Active)})
			continue
		case !v.Validated:
			warnings = append(warnings, Warning{Object: object, Msg: fmt.Sprintf("dropped: active version %d fails validation: %s", v.Version, v.Error)})
			continue
		}
		if !appliesAnywhere(v.AppliesTo, ups) {
			warnings = append(warnings, Warning{Object: object, Msg: "applies to no host served now; it runs once one of its upstreams or domains is served"})
		}
		out = append(out, ActiveSnippet{Name: name, Version: v.Version, MD5: v.MD5, Source: v.Source,
			EntryPoints: v.EntryPoints, AppliesTo: v.AppliesTo, Order: v.Order})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out, warnings
}

func appliesAnywhere(p Placement, ups []Upstream) bool {
	for i := range ups {
		if p.Matches(ups[i].Name, ups[i].EffectiveDomains()) {
			return true
		}
		for _, r := range ups[i].Routes {
			if p.Matches("", []string{r.Host}) {
				return true
			}
		}
	}
	return false
}
