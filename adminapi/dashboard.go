package adminapi

import "github.com/gin-gonic/gin"

// registerDashboard serves the web dashboard at /.
func registerDashboard(r gin.IRouter) {}
