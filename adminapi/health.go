package adminapi

import "github.com/gin-gonic/gin"

// HealthDeps are what the health endpoints (/status, /feedback) need.
type HealthDeps struct{}

// registerHealth adds the health endpoints.
func registerHealth(r gin.IRouter, d Deps) {}
