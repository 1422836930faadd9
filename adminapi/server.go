// Package adminapi is dynup's HTTP admin API: the seed's paths (Slardar's JSON, dyups' text) plus views
// of what dynup serves.
package adminapi

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
)

// Deps are what the handlers read and write.
type Deps struct {
	Store     *registry.Store
	Publisher *publish.Publisher
	Nodes     *nodes.Tracker
	Rollout   *rollout.Tracker
	// Sources reports each source's sync state (Consul watches); nil in file mode.
	Sources func() []registry.SourceStatus
	Log     *slog.Logger
	// MaxBodyBytes bounds a request body; larger bodies get 413 and change nothing.
	MaxBodyBytes int64
	// Each feature keeps its own dependencies next to its handlers (lua.go, health.go).
	Lua    LuaDeps
	Health HealthDeps
}

// DefaultMaxBodyBytes fits ten thousand servers in Slardar's JSON with room to spare.
const DefaultMaxBodyBytes = 4 << 20

// New returns the admin API handler.
func New(d Deps) http.Handler {
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(gin.Recovery(), requestLog(d.Log))
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "", "no such endpoint: "+c.Request.URL.Path) })
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})

	u := &upstreamHandlers{d}
	r.GET("/list", u.list)
	r.GET("/detail", u.detail)
	r.GET("/upstreams", u.detail) // Slardar's name for the same dump
	r.GET("/upstream/:name", u.get)
	r.POST("/upstream/:name", u.put)
	r.PUT("/upstream/:name", u.put)
	r.DELETE("/upstream/:name", u.delete)

	ch := &changeHandlers{d}
	r.GET("/changes", ch.list)
	r.GET("/changes/:id", ch.get)

	v := &viewHandlers{d}
	r.GET("/xds", v.xds)
	r.GET("/nodes", v.nodes)
	r.GET("/nodes/:id", v.node)
	r.GET("/metrics", gin.WrapH(promhttp.Handler()))
	r.GET("/sources", v.sources)
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": 200}) })

	registerLua(r, d)
	registerHealth(r, d)
	registerDashboard(r)
	return r
}

func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if log != nil && c.Request.Method != http.MethodGet {
			log.Info("admin request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status())
		}
	}
}
