package adminapi

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/dyups"
	"github.com/dynup/dynup/registry/slardar"
)

type upstreamHandlers struct{ Deps }

// dyupsFormat reports whether the caller asked for dyups' text answers (?format=dyups).
func dyupsFormat(c *gin.Context) bool { return c.Query("format") == "dyups" }

// GET /list: the upstream names.
func (h *upstreamHandlers) list(c *gin.Context) {
	st := h.Store.State()
	if dyupsFormat(c) {
		c.String(http.StatusOK, strings.Join(st.Names(), "\n")+"\n")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": 200, "revision": st.Revision, "version": st.Hash, "upstreams": st.Names()})
}

// GET /detail and /upstreams: every upstream with its servers (and where each came from) and options.
func (h *upstreamHandlers) detail(c *gin.Context) {
	st := h.Store.State()
	if dyupsFormat(c) {
		var b strings.Builder
		for _, u := range st.Upstreams {
			b.WriteString(u.Name + "\n" + dyups.Format(u) + "\n")
		}
		c.String(http.StatusOK, b.String())
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"status": 200, "revision": st.Revision, "version": st.Hash, "store": h.Store.BackendName(),
		"upstreams": st.Upstreams, "warnings": st.Warnings, "xds": h.Publisher.Status(),
	})
}

// GET /upstream/{name}
func (h *upstreamHandlers) get(c *gin.Context) {
	name := c.Param("name")
	u, ok := h.Store.State().Upstream(name)
	if !ok {
		fail(c, http.StatusNotFound, "", "upstream "+name+" not found")
		return
	}
	if dyupsFormat(c) {
		c.String(http.StatusOK, dyups.Format(*u))
		return
	}
	if rej := rejectionsOf(h.Nodes.Nodes(), name); len(rej) > 0 {
		c.JSON(http.StatusOK, struct {
			*registry.Upstream
			RejectedBy []rejection `json:"rejected_by"`
		}{u, rej})
		return
	}
	c.JSON(http.StatusOK, u)
}

// POST or PUT /upstream/{name}: Slardar's JSON or dyups' text creates or replaces the upstream.
func (h *upstreamHandlers) put(c *gin.Context) {
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
	var existing *registry.Upstream
	if u, ok := h.Store.Upstream(name); ok {
		existing = &u
	}
	isJSON := isJSONBody(body)
	var u registry.Upstream
	if isJSON {
		u, err = slardar.Decode(name, body, existing)
	} else {
		u, err = dyups.Parse(name, string(body), existing)
	}
	if err != nil {
		failErr(c, err)
		return
	}
	if len(u.Servers) == 0 && !h.discovered(name) {
		fail(c, http.StatusBadRequest, "servers", "can not update empty level: an upstream needs at least one server "+
			"(in Consul mode its servers may instead come from the catalog service of the same name)")
		return
	}
	st, err := h.Store.PutUpstream(c.Request.Context(), u, "admin")
	if err != nil {
		failErr(c, err)
		return
	}
	text := ""
	if !isJSON {
		text = "success" // dyups' answer
	}
	h.accepted(c, st, text)
}

// discovered tells whether service discovery gives the upstream servers, so that options alone (for a
// Consul service, say) make a useful upstream.
func (h *upstreamHandlers) discovered(name string) bool {
	u, ok := h.Store.State().Upstream(name)
	if !ok {
		return false
	}
	stored, _ := h.Store.Upstream(name)
	for _, s := range u.Servers {
		if !slices.ContainsFunc(stored.Servers, func(t registry.Server) bool { return t.Host == s.Host && t.Port == s.Port }) {
			return true
		}
	}
	return false
}

// DELETE /upstream/{name}
func (h *upstreamHandlers) delete(c *gin.Context) {
	st, err := h.Store.DeleteUpstream(c.Request.Context(), c.Param("name"), "admin")
	if err != nil {
		failErr(c, err)
		return
	}
	h.accepted(c, st, "")
}

// isJSONBody tells Slardar's JSON from dyups' text: dyups directives never start with '{' or '['.
func isJSONBody(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
