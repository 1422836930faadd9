package adminapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
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
