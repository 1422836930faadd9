package adminapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/registry"
)

// errorBody keeps Slardar's answer shape ({"status":400,"msg":"..."}, HTTP status = status) and adds the
// field at fault, so scripts that read "msg" keep working and people see what to fix.
type errorBody struct {
	Status int    `json:"status"`
	Msg    string `json:"msg"`
	Field  string `json:"field,omitempty"`
}

func fail(c *gin.Context, status int, field, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Status: status, Msg: msg, Field: field})
}

// failErr maps store and validation errors onto HTTP statuses.
func failErr(c *gin.Context, err error) {
	var (
		fieldErr    *registry.FieldError
		notFound    *registry.NotFoundError
		conflict    *registry.ConflictError
		unavailable *registry.UnavailableError
		tooLarge    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		fail(c, http.StatusRequestEntityTooLarge, "body", "body is larger than the limit of "+itoa(tooLarge.Limit)+" bytes")
	case errors.As(err, &fieldErr):
		fail(c, http.StatusBadRequest, fieldErr.Field, fieldErr.Error())
	case errors.As(err, &notFound):
		fail(c, http.StatusNotFound, "", notFound.Msg)
	case errors.As(err, &conflict):
		fail(c, http.StatusConflict, "", conflict.Msg)
	case errors.As(err, &unavailable):
		fail(c, http.StatusServiceUnavailable, "", unavailable.Error()+"; nothing was changed")
	default:
		fail(c, http.StatusInternalServerError, "", err.Error())
	}
}
