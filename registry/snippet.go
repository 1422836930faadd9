package registry

import (
	"crypto/md5"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snippet is a Lua filter snippet (Envoy's Lua API) with its versions, Slardar's lifecycle: POST stages a
// new version, PUT activates one. Placement and order belong to each version, not to the snippet, so that
// staging never changes what Envoys run, and activating an older version (rollback) restores where it ran.
type Snippet struct {
	Name string `json:"name"`
	// Versions are kept oldest first; numbers only grow, so a number never names two sources.
	Versions []SnippetVersion `json:"versions"`
	// Active is the number of the version Envoys run; 0 means none yet (only staged versions).
	Active int `json:"active"`
}

// SnippetVersion is one stored source with where it applies.
type SnippetVersion struct {
	Version int    `json:"version"`
	Source  string `json:"source"`
	// MD5 is Slardar's version id: the hex md5 of the source. Set by the store.
	MD5       string    `json:"md5"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// ActivatedAt is when this version last became the active one.
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	AppliesTo   Placement `json:"applies_to"`
	// Order sorts the snippets that apply to one host: lower runs first, equal orders run by name.
	Order int `json:"order"`
	// Validated, EntryPoints and Error are the store's verdict when it last validated the source (at
	// staging and at every load). They are derived, never trusted from storage: a hand edit in Consul
	// KV or a stricter validator after an upgrade is caught on load.
	Validated   bool     `json:"validated"`
	EntryPoints []string `json:"entry_points,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// Placement says which hosts a snippet applies to: every host, or the hosts of the named upstreams (their
// virtual hosts) and the named domains. A path route that another host sends to a named upstream is not
// included: a snippet runs per host.
type Placement struct {
	All       bool     `json:"all,omitempty"`
	Upstreams []string `json:"upstreams,omitempty"`
	Domains   []string `json:"domains,omitempty"`
}

// ActiveSnippet is a snippet as translation sees it: its active, validated version.
type ActiveSnippet struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	MD5         string    `json:"md5"`
	Source      string    `json:"source"`
	EntryPoints []string  `json:"entry_points"`
	AppliesTo   Placement `json:"applies_to"`
	Order       int       `json:"order"`
}

// MaxSnippetVersions bounds the versions kept per snippet; the oldest inactive ones go first.
const MaxSnippetVersions = 20

// ScriptPrefix is Slardar's naming convention for per-host scripts: "script.<host>" applies to <host>.
const ScriptPrefix = "script."

// Version returns the numbered version.
func (s *Snippet) Version(n int) (*SnippetVersion, bool) {
	for i := range s.Versions {
		if s.Versions[i].Version == n {
			return &s.Versions[i], true
		}
	}
	return nil, false
}

// Staged returns the newest version if it is newer than the active one: what PUT /lua/{name} activates.
func (s *Snippet) Staged() (*SnippetVersion, bool) {
	if len(s.Versions) == 0 {
		return nil, false
	}
	v := &s.Versions[len(s.Versions)-1]
	if v.Version <= s.Active {
		return nil, false
	}
	return v, true
}

// Matches reports whether a host (a virtual host named after its upstream, serving domains) is covered.
func (p Placement) Matches(host string, domains []string) bool {
	if p.All || slices.Contains(p.Upstreams, host) {
		return true
	}
	for _, d := range domains {
		if slices.Contains(p.Domains, d) {
			return true
		}
	}
	return false
}

// DefaultPlacement is where a new snippet applies when the caller does not say: Slardar's "script.<host>"
// names apply to that host; any other name has no default, because "every host" must be asked for.
func DefaultPlacement(name string) (Placement, bool) {
	if host, ok := strings.CutPrefix(name, ScriptPrefix); ok && host != "" {
		return Placement{Domains: []string{strings.ToLower(host)}}, true
	}
	return Placement{}, false
}

// Normalize puts a placement in canonical form: lower-case domains, sorted, no repeats.
func (p *Placement) Normalize() {
	for i, d := range p.Domains {
		p.Domains[i] = strings.ToLower(strings.TrimSpace(d))
	}
	for i, u := range p.Upstreams {
		p.Upstreams[i] = strings.TrimSpace(u)
	}
	slices.Sort(p.Domains)
	p.Domains = slices.Compact(p.Domains)
	slices.Sort(p.Upstreams)
	p.Upstreams = slices.Compact(p.Upstreams)
	if p.All {
		p.Upstreams, p.Domains = nil, nil
	}
}

// Validate checks a normalized placement: all hosts, or at least one upstream or domain, each well formed.
func (p Placement) Validate() error {
	if !p.All && len(p.Upstreams) == 0 && len(p.Domains) == 0 {
		return fieldErr("applies_to", `say where the snippet applies: {"all":true}, or "upstreams" and/or "domains"`)
	}
	for i, u := range p.Upstreams {
		if err := ValidateName(u); err != nil {
			return fieldErr("applies_to.upstreams["+strconv.Itoa(i)+"]", "%q is not a valid upstream name", u)
		}
	}
	for i, d := range p.Domains {
		if d == CatchAll || !domainRE.MatchString(d) {
			return fieldErr("applies_to.domains["+strconv.Itoa(i)+"]", "%q is not a domain (a DNS name, optionally starting with \"*.\")", d)
		}
	}
	return nil
}

// SourceMD5 is Slardar's version id of a source.
func SourceMD5(src string) string {
	sum := md5.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}
