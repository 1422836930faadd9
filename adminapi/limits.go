package adminapi

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Limits bound what admin requests can cost dynup, whatever handler serves them.
type Limits struct {
	// MaxBodyBytes caps every request body; a handler may cap its own lower (BodyLimit).
	MaxBodyBytes int64
	// MaxConcurrentWrites bounds the mutations whose bodies are being read at once, so that many slow or
	// large uploads cannot hold MaxBodyBytes each in memory. Writes are applied one at a time anyway.
	MaxConcurrentWrites int
	// WriteQueueWait is how long a mutation waits for a slot before it gets 503 and Retry-After.
	WriteQueueWait time.Duration
}

const (
	// DefaultMaxConcurrentWrites with DefaultMaxBodyBytes bounds in-flight bodies to 128 MiB.
	DefaultMaxConcurrentWrites = 32
	DefaultWriteQueueWait      = 10 * time.Second
	// MaxSnippetBodyBytes caps a Lua snippet upload: luafilters refuses sources over 64 KiB, and a JSON
	// body may escape every byte of one (\u0000 is six bytes for one), plus the snippet's settings.
	MaxSnippetBodyBytes = 512 << 10
)

// DefaultLimits are the limits New applies when Deps sets none.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: DefaultMaxBodyBytes, MaxConcurrentWrites: DefaultMaxConcurrentWrites, WriteQueueWait: DefaultWriteQueueWait}
}

// Limit applies l to every request: a body declared larger than the cap is refused with 413 before any
// of it is read, every body is cut off at the cap (413 from the handler that reads it), and mutations
// take a slot while their body is read.
func Limit(l Limits) gin.HandlerFunc {
	d := DefaultLimits()
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxConcurrentWrites <= 0 {
		l.MaxConcurrentWrites = d.MaxConcurrentWrites
	}
	if l.WriteQueueWait <= 0 {
		l.WriteQueueWait = d.WriteQueueWait
	}
	slots := make(chan struct{}, l.MaxConcurrentWrites)
	return func(c *gin.Context) {
		if !capBody(c, l.MaxBodyBytes) {
			return
		}
		if c.Query("wait") != "" {
			// The server's write timeout is short, against slow readers; a write that waits for its
			// rollout may answer up to maxWait later. (Fails harmlessly where deadlines are unsupported.)
			_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(maxWait + 30*time.Second))
		}
		if !isMutation(c.Request.Method) {
			return
		}
		timer := time.NewTimer(l.WriteQueueWait)
		defer timer.Stop()
		select {
		case slots <- struct{}{}:
		case <-timer.C:
			c.Header("Retry-After", "1")
			fail(c, http.StatusServiceUnavailable, "", "too many admin writes in progress; retry shortly (nothing was changed)")
			return
		case <-c.Request.Context().Done():
			c.Abort() // the client went away
			return
		}
		// The slot is given back as soon as the body has been read (a write waiting for its rollout with
		// ?wait= holds no body), or when the request ends, whichever comes first.
		body := &slotBody{ReadCloser: c.Request.Body, release: sync.OnceFunc(func() { <-slots })}
		c.Request.Body = body
		defer body.release()
		c.Next()
	}
}

// BodyLimit caps the bodies of one route group below the global cap, e.g. the Lua snippet endpoints:
// r.Group("/lua", BodyLimit(MaxSnippetBodyBytes)).
func BodyLimit(n int64) gin.HandlerFunc {
	return func(c *gin.Context) { capBody(c, n) }
}

// capBody refuses a declared length over n and wraps the body so reading past n fails; it reports
// whether the request goes on.
func capBody(c *gin.Context, n int64) bool {
	if c.Request.ContentLength > n {
		c.Header("Connection", "close") // the unread body would otherwise be drained from the connection
		fail(c, http.StatusRequestEntityTooLarge, "body", "body is larger than the limit of "+strconv.FormatInt(n, 10)+" bytes")
		return false
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
	}
	return true
}

// slotBody releases its write slot when the body is exhausted, fails, or is closed.
type slotBody struct {
	io.ReadCloser
	release func()
}

func (b *slotBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.release()
	}
	return n, err
}

func (b *slotBody) Close() error {
	b.release()
	return b.ReadCloser.Close()
}
