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
