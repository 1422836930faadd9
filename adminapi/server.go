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
	// Auth says who may call the API (auth.go); the zero value is open, which is safe on loopback only.
	Auth AuthConfig
	// Limits bound request bodies and concurrent writes (limits.go); zero values take the defaults.
	Limits Limits
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
	if d.Auth.Audit == nil {
		d.Auth.Audit = d.Log
	}
	if d.Limits.MaxBodyBytes <= 0 {
		d.Limits.MaxBodyBytes = d.MaxBodyBytes
	}
	// Authentication first: a refused request takes no write slot and no handler sees it. Guard also
	// writes the audit line of every write (it replaces the old request log).
	r.Use(gin.Recovery(), Guard(d.Auth), Limit(d.Limits))
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
