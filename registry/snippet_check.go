package registry

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/dynup/dynup/luafilters"
)

// luaChecker validates snippet sources by executing them (luafilters) and remembers each verdict by md5,
// so that a reload or a Consul watch round only runs sources it has not seen. It has its own lock: a run
// may take up to luafilters' time limit and must never hold the store's.
type luaChecker struct {
	mu       sync.Mutex
	verdicts map[string]luaVerdict
}

type luaVerdict struct {
	entryPoints []string
	err         error
}

// maxVerdicts bounds the memo; past it the memo starts over (re-validating is only slower, never wrong).
const maxVerdicts = 4096

func newLuaChecker() *luaChecker { return &luaChecker{verdicts: map[string]luaVerdict{}} }

// reloadTimeout is the wall-clock limit when stored snippets are validated again (load, KV watch). The
// instruction limit still stops loops deterministically; a busy machine must not make a snippet that was
// accepted at staging stop being served.
const reloadTimeout = 10 * time.Second

// check validates src under lim and returns its entry points, or the *luafilters.ValidationError.
func (c *luaChecker) check(src string, lim luafilters.Limits) ([]string, error) {
	sum := SourceMD5(src)
	c.mu.Lock()
	v, ok := c.verdicts[sum]
	c.mu.Unlock()
	if ok {
		return v.entryPoints, v.err
	}
	entry, err := luafilters.EntryPoints(src, lim)
	var verr *luafilters.ValidationError
	// A limit verdict depends on the limits and on how busy the machine is, so it is not remembered.
	if !errors.As(err, &verr) || verr.Phase != luafilters.PhaseLimit {
		c.mu.Lock()
		if len(c.verdicts) >= maxVerdicts {
			c.verdicts = map[string]luaVerdict{}
		}
		c.verdicts[sum] = luaVerdict{entryPoints: entry, err: err}
		c.mu.Unlock()
	}
	return entry, err
}

// stamp returns a copy of snippets in which every version carries the store's own verdict (md5,
// validated, entry points, error) and a normalized placement, whatever the stored copy claimed.
func (c *luaChecker) stamp(snippets map[string]Snippet) map[string]Snippet {
	out := make(map[string]Snippet, len(snippets))
	for name, sn := range snippets {
		sn.Name = name
		sn.Versions = append([]SnippetVersion(nil), sn.Versions...)
		sort.SliceStable(sn.Versions, func(i, j int) bool { return sn.Versions[i].Version < sn.Versions[j].Version })
		for i := range sn.Versions {
			c.stampVersion(&sn.Versions[i])
		}
		out[name] = sn
	}
	return out
}

func (c *luaChecker) stampVersion(v *SnippetVersion) {
	v.MD5 = SourceMD5(v.Source)
	v.AppliesTo.Upstreams = append([]string(nil), v.AppliesTo.Upstreams...)
	v.AppliesTo.Domains = append([]string(nil), v.AppliesTo.Domains...)
	v.AppliesTo.Normalize()
	v.EntryPoints, v.Validated, v.Error = nil, false, ""
	if err := v.AppliesTo.Validate(); err != nil {
		v.Error = err.Error()
		return
	}
	lim := luafilters.DefaultLimits()
	lim.Timeout = reloadTimeout
	entry, err := c.check(v.Source, lim)
	if err != nil {
		v.Error = err.Error()
		return
	}
	v.EntryPoints, v.Validated = entry, true
}
