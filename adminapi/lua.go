package adminapi

import "github.com/gin-gonic/gin"

// LuaDeps are what the Lua snippet handlers need.
type LuaDeps struct{}

// registerLua adds the Lua snippet endpoints (/lua...).
func registerLua(r gin.IRouter, d Deps) {}
