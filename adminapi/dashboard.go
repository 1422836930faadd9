package adminapi

import (
	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/adminapi/dashboard"
)

// registerDashboard serves the web dashboard at / and its assets under /ui/. The page reads the JSON
// endpoints registered next to it, so it needs no dependencies of its own.
func registerDashboard(r gin.IRouter) {
	h := gin.WrapH(dashboard.Handler())
	for _, p := range []string{"/", dashboard.AssetPrefix + "*asset"} {
		r.GET(p, h)
		r.HEAD(p, h)
	}
}
