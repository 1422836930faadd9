package adminapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
)

// ChangeHeader carries the id of the change a write made, for callers that read headers (dyups' text).
const ChangeHeader = "X-Dynup-Change"

// maxWait bounds ?wait=, so a forgotten wait never holds a connection for long.
const maxWait = 5 * time.Minute

// accepted answers a write: the change id in a header and the body, and with ?wait=DURATION, the change's
// rollout once every connected node has ACKed or rejected it (or the wait ran out).
func (d Deps) accepted(c *gin.Context, st *registry.State, text string) {
	c.Header(ChangeHeader, strconv.FormatUint(st.Revision, 10))
	body := gin.H{"status": 200, "change": st.Revision, "revision": st.Revision, "version": st.Hash}
	if w := c.Query("wait"); w != "" && d.Rollout != nil {
		wait, err := time.ParseDuration(w)
		if err != nil || wait <= 0 || wait > maxWait {
			// The write happened; say so, and say what was wrong with the wait.
			body["wait_error"] = "wait: " + strconv.Quote(w) + " is not a duration between 0 and 5m (e.g. 5s)"
		} else {
			ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
			report, _ := d.Rollout.Wait(ctx, st.Revision)
			cancel()
			body["rollout"] = report
			body["rolled_out"] = report.Nodes.Pending == 0 && report.Nodes.Nacked == 0
		}
	}
	if text != "" && c.Query("wait") == "" {
		c.String(http.StatusOK, text)
		return
	}
	c.JSON(http.StatusOK, body)
}

type changeHandlers struct{ Deps }

// GET /changes: the newest changes with their propagation.
func (h *changeHandlers) list(c *gin.Context) {
	n := 50
	if v, err := strconv.Atoi(c.Query("limit")); err == nil && v > 0 && v <= 256 {
		n = v
	}
	c.JSON(http.StatusOK, gin.H{"status": 200, "changes": h.Rollout.Recent(n)})
}

// GET /changes/{id}
func (h *changeHandlers) get(c *gin.Context) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 64)
	if err != nil {
		fail(c, http.StatusBadRequest, "id", "change id "+strconv.Quote(c.Param("id"))+" is not a number")
		return
	}
	r, ok := h.Rollout.Report(id)
	if !ok {
		fail(c, http.StatusNotFound, "", "change "+c.Param("id")+" is unknown (never made, or older than the last 256 changes)")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": 200, "change": r})
}

// rejection is a node that NACKed a version made by a change to an upstream.
type rejection struct {
	Node    string    `json:"node"`
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Detail  string    `json:"detail"`
	At      time.Time `json:"at"`
	Changes []uint64  `json:"changes"`
}

// rejectionsOf lists nodes whose current NACK is attributed to a change of the named upstream. A NACK is
// current while the node was sent nothing newer than the version it rejected.
func rejectionsOf(all []nodes.Node, upstream string) []rejection {
	var out []rejection
	for _, n := range all {
		for typ, ts := range n.Types {
			nack := ts.LastNack
			if nack == nil || nack.Version != ts.SentVersion {
				continue
			}
			var ids []uint64
			for _, ch := range nack.Changes {
				if slices.Contains(ch.Upstreams, upstream) {
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
