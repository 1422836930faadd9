package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/luafilters"
	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
)

// LuaDeps are what the Lua snippet handlers need.
type LuaDeps struct {
	// MaxConcurrentRuns bounds how many snippets are validated or dry-run at once (each may use up to
	// luafilters' limits of CPU time and memory); 0 means DefaultLuaRuns.
	MaxConcurrentRuns int
}

// DefaultLuaRuns is the default bound on concurrent validations and dry runs.
const DefaultLuaRuns = 4

// luaQueueWait is how long a request waits for a free run slot before it gets 503.
const luaQueueWait = 5 * time.Second

// Snippet headers name the version a write staged or activated, next to the change id.
const (
	SnippetVersionHeader = "X-Dynup-Snippet-Version"
	SnippetMD5Header     = "X-Dynup-Snippet-Md5"
)

type luaHandlers struct {
	Deps
	runs chan struct{} // a semaphore: one token per validation or dry run in progress
}

// registerLua adds the Lua snippet endpoints (/lua...), Slardar's lifecycle: POST stages and validates a
// version, PUT activates it (or, with ?version=N, any older one), GET lists versions with their md5 and
// times, DELETE removes; POST /lua/{name}/test dry-runs a sample request. See docs/lua.md.
func registerLua(r gin.IRouter, d Deps) {
	n := d.Lua.MaxConcurrentRuns
	if n <= 0 {
		n = DefaultLuaRuns
	}
	h := &luaHandlers{Deps: d, runs: make(chan struct{}, n)}
	// PRIVILEGED: everything under /lua. A staged snippet is code that every Envoy of the fleet runs once
	// activated, dry runs execute code inside dynup, and the sources may hold secrets. The admin API's
	// authentication must guard this whole group with its strongest permission (add the middleware with
	// lua.Use(...)), not only the writes.
	lua := r.Group("/lua", BodyLimit(MaxSnippetBodyBytes))
	lua.GET("", h.list)
	lua.PUT("", h.activateAll)
	lua.GET("/:name", h.get)
	lua.POST("/:name", h.stage)
	lua.PUT("/:name", h.activate)
	lua.DELETE("/:name", h.delete)
	lua.POST("/:name/test", h.test)
}

// acquire takes a run slot, or answers 503 when none frees up in time.
func (h *luaHandlers) acquire(c *gin.Context) (release func(), ok bool) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), luaQueueWait)
	defer cancel()
	select {
	case h.runs <- struct{}{}:
		return func() { <-h.runs }, true
	case <-ctx.Done():
		fail(c, http.StatusServiceUnavailable, "", "too many Lua validations are running; retry shortly")
		return nil, false
	}
}

// stageBody is the JSON form of POST /lua/{name}. A body that is not JSON is the Lua source itself.
type stageBody struct {
	Source    *string             `json:"source"`
	AppliesTo *registry.Placement `json:"applies_to"`
	Order     *int                `json:"order"`
}

// POST /lua/{name}: validate and stage a new version. Body: raw Lua (placement and order from the query:
// all=true, upstreams=a,b, domains=x,y, order=N), or JSON {"source","applies_to","order"}. Without a
// placement a new version keeps the previous version's.
func (h *luaHandlers) stage(c *gin.Context) {
	name := c.Param("name")
	if err := registry.ValidateName(name); err != nil {
		failErr(c, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.MaxBodyBytes))
	if err != nil {
		failErr(c, err)
		return
	}
	draft, ok := parseStage(c, body)
	if !ok {
		return
	}
	release, ok := h.acquire(c)
	if !ok {
		return
	}
	st, v, err := h.Store.StageSnippet(c.Request.Context(), name, draft, "admin")
	release()
	if err != nil {
		luaFailErr(c, err)
		return
	}
	h.snippetAccepted(c, st, name, v, "staged")
}

func parseStage(c *gin.Context, body []byte) (registry.SnippetDraft, bool) {
	if !isJSONBody(body) && !strings.HasPrefix(c.ContentType(), "application/json") {
		d := registry.SnippetDraft{Source: string(body)}
		q := c.Request.URL.Query()
		if q.Has("all") || q.Has("upstreams") || q.Has("domains") {
			all, err := strconv.ParseBool(q.Get("all"))
			if q.Has("all") && err != nil {
				fail(c, http.StatusBadRequest, "all", "all="+strconv.Quote(q.Get("all"))+" is not true or false")
				return d, false
			}
			d.AppliesTo = &registry.Placement{All: all, Upstreams: splitList(q.Get("upstreams")), Domains: splitList(q.Get("domains"))}
		}
		if q.Has("order") {
			n, err := strconv.Atoi(q.Get("order"))
			if err != nil {
				fail(c, http.StatusBadRequest, "order", "order="+strconv.Quote(q.Get("order"))+" is not an integer")
				return d, false
			}
			d.Order = &n
		}
		return d, true
	}
	var sb stageBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sb); err != nil {
		fail(c, http.StatusBadRequest, "body", `body is neither Lua nor {"source":...,"applies_to":{...},"order":N}: `+err.Error())
		return registry.SnippetDraft{}, false
	}
	if sb.Source == nil {
		fail(c, http.StatusBadRequest, "source", "source is missing: the Lua code of the snippet")
		return registry.SnippetDraft{}, false
	}
	return registry.SnippetDraft{Source: *sb.Source, AppliesTo: sb.AppliesTo, Order: sb.Order}, true
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// PUT /lua/{name}: activate the staged version, or ?version=N (an older one is a rollback).
func (h *luaHandlers) activate(c *gin.Context) {
	version := 0
	if v := c.Query("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail(c, http.StatusBadRequest, "version", "version="+strconv.Quote(v)+" is not a version number")
			return
		}
		version = n
	}
	st, v, err := h.Store.ActivateSnippet(c.Request.Context(), c.Param("name"), version, "admin")
	if err != nil {
		luaFailErr(c, err)
		return
	}
	h.snippetAccepted(c, st, c.Param("name"), v, "active")
}

// PUT /lua: activate every staged version at once (Slardar's PUT /lua), in one change.
func (h *luaHandlers) activateAll(c *gin.Context) {
	st, names, err := h.Store.ActivateAllStaged(c.Request.Context(), "admin")
	if err != nil {
		luaFailErr(c, err)
		return
	}
	c.Header("X-Dynup-Activated", strings.Join(names, ","))
	h.accepted(c, st, "")
}

// DELETE /lua/{name}
func (h *luaHandlers) delete(c *gin.Context) {
	st, err := h.Store.DeleteSnippet(c.Request.Context(), c.Param("name"), "admin")
	if err != nil {
		luaFailErr(c, err)
		return
	}
	h.accepted(c, st, "")
}

// snippetAccepted answers a snippet write like every write (change id, ?wait=), and says which version
// the write is about in headers: the shared answer's "version" field is the state's version.
func (h *luaHandlers) snippetAccepted(c *gin.Context, st *registry.State, name string, v registry.SnippetVersion, what string) {
	c.Header(SnippetVersionHeader, strconv.Itoa(v.Version))
	c.Header(SnippetMD5Header, v.MD5)
	if h.Log != nil {
		h.Log.Info("lua snippet "+what, "snippet", name, "snippet_version", v.Version, "md5", v.MD5, "change", st.Revision)
	}
	h.accepted(c, st, "")
}

// luaFailErr answers validation errors with their line and phase, and store errors as failErr does.
func luaFailErr(c *gin.Context, err error) {
	var verr *luafilters.ValidationError
	if errors.As(err, &verr) {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"status": http.StatusBadRequest, "msg": verr.Error(),
			"field": "source", "line": verr.Line, "phase": verr.Phase})
		return
	}
	failErr(c, err)
}

// snippetSummary is one snippet in GET /lua.
type snippetSummary struct {
	Name      string              `json:"name"`
	Active    int                 `json:"active"` // 0: nothing active yet
	ActiveMD5 string              `json:"active_md5,omitempty"`
	Staged    int                 `json:"staged,omitempty"` // the version PUT would activate
	AppliesTo *registry.Placement `json:"applies_to,omitempty"`
	Order     int                 `json:"order"`
	Versions  int                 `json:"versions"`
	// Hosts are the upstreams (virtual hosts) the active version runs on now.
	Hosts    []string           `json:"hosts"`
	Warnings []registry.Warning `json:"warnings,omitempty"`
}

// snippetVersionView is a version without its source (GET /lua/{name}?version=N returns that).
type snippetVersionView struct {
	Version     int                `json:"version"`
	MD5         string             `json:"md5"`
	Size        int                `json:"size"`
	CreatedAt   time.Time          `json:"created_at,omitzero"`
	ActivatedAt time.Time          `json:"activated_at,omitzero"`
	AppliesTo   registry.Placement `json:"applies_to"`
	Order       int                `json:"order"`
	Active      bool               `json:"active"`
	Staged      bool               `json:"staged"`
	Validated   bool               `json:"validated"`
	EntryPoints []string           `json:"entry_points,omitempty"`
	Error       string             `json:"error,omitempty"`
}

func summarize(sn registry.Snippet, st *registry.State) snippetSummary {
	out := snippetSummary{Name: sn.Name, Active: sn.Active, Versions: len(sn.Versions), Hosts: []string{}}
	if v, ok := sn.Version(sn.Active); ok {
		out.ActiveMD5, out.AppliesTo, out.Order = v.MD5, &v.AppliesTo, v.Order
	}
	if v, ok := sn.Staged(); ok {
		out.Staged = v.Version
	}
	for _, a := range st.Snippets {
		if a.Name != sn.Name {
			continue
		}
		for _, u := range st.Upstreams {
			if a.AppliesTo.Matches(u.Name, u.EffectiveDomains()) {
				out.Hosts = append(out.Hosts, u.Name)
			}
		}
	}
	for _, w := range st.Warnings {
		if w.Object == "snippet/"+sn.Name {
			out.Warnings = append(out.Warnings, w)
		}
	}
	return out
}

// GET /lua: every snippet with its active and staged versions and where it runs.
func (h *luaHandlers) list(c *gin.Context) {
	st := h.Store.State()
	out := []snippetSummary{}
	for _, sn := range h.Store.Snippets() {
		out = append(out, summarize(sn, st))
	}
	c.JSON(http.StatusOK, gin.H{"status": 200, "revision": st.Revision, "snippets": out})
}

// GET /lua/{name}: versions with md5 and times, the active source, and the nodes whose current NACK
// follows a change of this snippet. ?version=N returns that version's source as text.
func (h *luaHandlers) get(c *gin.Context) {
	name := c.Param("name")
	sn, ok := h.Store.Snippet(name)
	if !ok {
		fail(c, http.StatusNotFound, "", "snippet "+name+" not found")
		return
	}
	if q := c.Query("version"); q != "" {
		n, _ := strconv.Atoi(q)
		v, ok := sn.Version(n)
		if !ok {
			fail(c, http.StatusNotFound, "version", "snippet "+name+" has no version "+strconv.Quote(q))
			return
		}
		c.Header(SnippetVersionHeader, strconv.Itoa(v.Version))
		c.Header(SnippetMD5Header, v.MD5)
		c.Data(http.StatusOK, "text/x-lua; charset=utf-8", []byte(v.Source))
		return
	}
	versions := make([]snippetVersionView, 0, len(sn.Versions))
	staged, _ := sn.Staged()
	for _, v := range sn.Versions {
		versions = append(versions, snippetVersionView{Version: v.Version, MD5: v.MD5, Size: len(v.Source),
			CreatedAt: v.CreatedAt, ActivatedAt: v.ActivatedAt, AppliesTo: v.AppliesTo, Order: v.Order,
			Active: v.Version == sn.Active, Staged: staged != nil && v.Version == staged.Version,
			Validated: v.Validated, EntryPoints: v.EntryPoints, Error: v.Error})
	}
	slices.Reverse(versions) // newest first, as a changelog reads
	body := gin.H{"status": 200, "snippet": summarize(sn, h.Store.State()), "versions": versions}
	if v, ok := sn.Version(sn.Active); ok {
		body["source"] = v.Source
	}
	if rej := rejectionsOfSnippet(h.Nodes.Nodes(), name); len(rej) > 0 {
		body["rejected_by"] = rej
	}
	c.JSON(http.StatusOK, body)
}

// rejectionsOfSnippet is rejectionsOf (changes.go) for a snippet: nodes whose current NACK is attributed
// to a change that staged, activated or removed it.
func rejectionsOfSnippet(all []nodes.Node, snippet string) []rejection {
	var out []rejection
	for _, n := range all {
		for typ, ts := range n.Types {
			nack := ts.LastNack
			if nack == nil || nack.Version != ts.SentVersion {
				continue
			}
			var ids []uint64
			for _, ch := range nack.Changes {
				if slices.Contains(ch.Snippets, snippet) {
					ids = append(ids, ch.Revision)
				}
			}
			if len(ids) > 0 {
				out = append(out, rejection{Node: n.ID, Type: typ, Version: nack.Version, Detail: nack.Detail, At: nack.At, Changes: ids})
			}
		}
	}
	return out
}

// dryRunBody is POST /lua/{name}/test: the sample request's fields at the top level, optionally a sample
// response, and which code to run (default: the staged version, else the active one; "version": N; or an
// unsaved "source").
type dryRunBody struct {
	luafilters.SampleRequest
	Response *luafilters.SampleResponse `json:"response,omitempty"`
	Version  int                        `json:"version,omitempty"`
	Source   *string                    `json:"source,omitempty"`
}

// POST /lua/{name}/test: what the snippet would do with a sample request: continue (with these header
// changes) or respond (status, headers, body). Nothing is stored.
func (h *luaHandlers) test(c *gin.Context) {
	name := c.Param("name")
	var req dryRunBody
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, h.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		fail(c, http.StatusBadRequest, "body", `body must be {"method","path","headers","body","response":{...},"version","source"}: `+err.Error())
		return
	}
	out := gin.H{"status": 200, "snippet": name}
	var placement *registry.Placement
	src := ""
	if req.Source != nil {
		src = *req.Source
	} else {
		sn, ok := h.Store.Snippet(name)
		if !ok {
			fail(c, http.StatusNotFound, "", "snippet "+name+" not found (send \"source\" to test code that is not stored)")
			return
		}
		v, ok := pickVersion(sn, req.Version)
		if !ok {
			fail(c, http.StatusNotFound, "version", "snippet "+name+" has no version "+strconv.Itoa(req.Version))
			return
		}
		src, placement = v.Source, &v.AppliesTo
		out["version"], out["md5"] = v.Version, v.MD5
	}
	release, ok := h.acquire(c)
	if !ok {
		return
	}
	res, err := luafilters.DryRun(src, req.SampleRequest, req.Response, luafilters.DefaultLimits())
	release()
	if errors.Is(err, luafilters.ErrBadSample) {
		fail(c, http.StatusBadRequest, "request", err.Error())
		return
	}
	var verr *luafilters.ValidationError
	if errors.As(err, &verr) {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"status": http.StatusBadRequest, "msg": verr.Error(),
			"field": "source", "line": verr.Line, "phase": verr.Phase, "result": res})
		return
	}
	if err != nil {
		failErr(c, err)
		return
	}
	if placement != nil {
		host := hostOf(req.SampleRequest)
		out["host"], out["applies_to_host"] = host, appliesToHost(*placement, h.Store.State(), host)
	}
	out["result"] = res
	c.JSON(http.StatusOK, out)
}

// pickVersion is the version a dry run tests: the numbered one, else the staged one, else the active one.
func pickVersion(sn registry.Snippet, n int) (*registry.SnippetVersion, bool) {
	if n > 0 {
		return sn.Version(n)
	}
	if v, ok := sn.Staged(); ok {
		return v, true
	}
	return sn.Version(sn.Active)
}

func hostOf(r luafilters.SampleRequest) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, "host") || k == ":authority" {
			if i := strings.LastIndexByte(v, ':'); i >= 0 && !strings.Contains(v[i:], "]") {
				v = v[:i]
			}
			return strings.ToLower(v)
		}
	}
	return "example.com" // luafilters' default authority
}

// appliesToHost tells whether Envoy would run a snippet with this placement for a request to host: the
// virtual host Envoy picks (exact domain, then wildcard, then the default upstream) must be covered.
func appliesToHost(p registry.Placement, st *registry.State, host string) bool {
	var wildcard, fallback *registry.Upstream
	for i := range st.Upstreams {
		u := &st.Upstreams[i]
		for _, d := range u.EffectiveDomains() {
			switch {
			case d == host:
				return p.Matches(u.Name, u.EffectiveDomains())
			case d == registry.CatchAll:
				fallback = u
			case strings.HasPrefix(d, "*.") && strings.HasSuffix(host, d[1:]) && wildcard == nil:
				wildcard = u
			}
		}
	}
	for _, u := range []*registry.Upstream{wildcard, fallback} {
		if u != nil {
			return p.Matches(u.Name, u.EffectiveDomains())
		}
	}
	return p.Matches("", []string{host})
}
