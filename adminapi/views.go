package adminapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/registry"
)

type viewHandlers struct{ Deps }

// GET /xds: the snapshot each node group is served, its versions, and the last publish error if any.
func (h *viewHandlers) xds(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": 200, "groups": h.Publisher.Status()})
}

// GET /nodes: connected nodes and, per resource type, what they were sent, ACKed and NACKed.
func (h *viewHandlers) nodes(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": 200, "nodes": h.Nodes.Nodes()})
}

// GET /nodes/{id}: every stream of one node (a node may hold several, e.g. while reconnecting).
func (h *viewHandlers) node(c *gin.Context) {
	var streams []any
	for _, n := range h.Nodes.Nodes() {
		if n.ID == c.Param("id") {
			streams = append(streams, n)
		}
	}
	if len(streams) == 0 {
		fail(c, http.StatusNotFound, "", "node "+c.Param("id")+" is not connected")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": 200, "streams": streams})
}

// GET /sources: each source's last index, last success and last error (Consul mode).
func (h *viewHandlers) sources(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": 200, "store": h.Store.BackendName(), "sources": h.sourceList()})
}

func (h *viewHandlers) sourceList() []registry.SourceStatus {
	if h.Sources == nil {
		return []registry.SourceStatus{}
	}
	if s := h.Sources(); s != nil {
		return s
	}
	return []registry.SourceStatus{}
}
