package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/healthcheck"
	"github.com/dynup/dynup/xds/feedback"
)

// HealthDeps are what the health endpoints (/status, /feedback) need. A nil part is turned off.
type HealthDeps struct {
	Checker *healthcheck.Checker // dynup's own heartbeat
	Tracker *feedback.Tracker    // the fleet-wide failure tracker
	LRS     *feedback.LRS        // load reports from Envoys, feeding Tracker
}

// registerHealth adds the health endpoints.
func registerHealth(r gin.IRouter, d Deps) {
	h := &healthHandlers{d}
	r.GET("/status", h.status)
	r.POST("/feedback", h.feedback)
}

type healthHandlers struct{ Deps }

// Server states in /status.
const (
	stateHealthy   = "healthy"   // checked by dynup (or listed passing by Consul) and fine
	stateUnhealthy = "unhealthy" // dynup's heartbeat found it failing
	stateEjected   = "ejected"   // failure feedback from the fleet took it out for fail_timeout
	stateDown      = "down"      // marked down in its definition
	stateUnchecked = "unchecked" // nothing in dynup checks it (Envoy's own checks are not visible here)
)

// statusView is GET /status: checkups' status, per upstream and server, plus the liveness of the checker
// and the tracker. Field names are stable (docs/health.md).
type statusView struct {
	Status   int            `json:"status"`
	Revision uint64         `json:"revision"`
	Version  string         `json:"version"`
	Checker  checkerView    `json:"checker"`
	Feedback feedbackView   `json:"feedback"`
	Upstream []upstreamView `json:"upstreams"`
}

type checkerView struct {
	Enabled bool `json:"enabled"`
	healthcheck.Liveness
}

type feedbackView struct {
	Enabled bool `json:"enabled"`
	feedback.Liveness
	LRS *feedback.LRSStatus `json:"lrs,omitempty"`
}

type upstreamView struct {
	Name      string `json:"name"`
	Protected bool   `json:"protected"`
	// ActiveCheck is who probes the servers: envoy, dynup, both, or none.
	ActiveCheck string `json:"active_check"`
	// Passive is the limit per-cluster outlier detection in Envoy and gRPC nodes applies (the smallest
	// among the servers); each server's own limit is in its feedback part.
	Passive struct {
		MaxFails    int                  `json:"max_fails"`
		FailTimeout healthcheck.Duration `json:"fail_timeout"`
	} `json:"passive"`
	Servers []serverView `json:"servers"`
}

type serverView struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Level  int    `json:"level"`
	Zone   string `json:"zone,omitempty"`
	Origin string `json:"origin"` // who contributed the server: admin, file, consul, consul-kv
	State  string `json:"state"`
	// DecidedBy names who decided the state: heartbeat, feedback, consul, admin (or the server's origin).
	DecidedBy string    `json:"decided_by"`
	Serving   bool      `json:"serving"` // nodes may send it traffic (its EDS health is not UNHEALTHY)
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Note      string    `json:"note,omitempty"`

	Heartbeat *healthcheck.ServerStatus `json:"heartbeat,omitempty"`
	Feedback  *feedback.ServerStatus    `json:"feedback,omitempty"`
}

// GET /status[?upstream=name]
func (h *healthHandlers) status(c *gin.Context) {
	st := h.Store.State()
	v := statusView{Status: 200, Revision: st.Revision, Version: st.Hash, Upstream: []upstreamView{}}
	var checks map[registry.ServerKey]healthcheck.ServerStatus
	if h.Health.Checker != nil {
		v.Checker.Enabled = true
		v.Checker.Liveness, checks = h.Health.Checker.Status()
	}
	var fb map[registry.ServerKey]feedback.ServerStatus
	if h.Health.Tracker != nil {
		v.Feedback.Enabled = true
		v.Feedback.Liveness, fb = h.Health.Tracker.Status()
	}
	if h.Health.LRS != nil {
		s := h.Health.LRS.Status()
		v.Feedback.LRS = &s
	}
	only := c.Query("upstream")
	for i := range st.Upstreams {
		u := &st.Upstreams[i]
		if only == "" || u.Name == only {
			v.Upstream = append(v.Upstream, upstreamStatus(u, checks, fb))
		}
	}
	if only != "" && len(v.Upstream) == 0 {
		fail(c, http.StatusNotFound, "upstream", "upstream "+only+" not found")
		return
	}
	c.JSON(http.StatusOK, v)
}

func upstreamStatus(u *registry.Upstream, checks map[registry.ServerKey]healthcheck.ServerStatus, fb map[registry.ServerKey]feedback.ServerStatus) upstreamView {
	uv := upstreamView{Name: u.Name, Protected: healthcheck.Protected(u), ActiveCheck: "none", Servers: []serverView{}}
	check, checked := healthcheck.ActiveCheck(u)
	if checked {
		uv.ActiveCheck = check.Checker
	}
	p := healthcheck.ClusterPassive(u)
	uv.Passive.MaxFails, uv.Passive.FailTimeout = p.MaxFails, healthcheck.Duration(p.FailTimeout)
	for j := range u.Servers {
		s := &u.Servers[j]
		k := registry.ServerKey{Upstream: u.Name, Host: s.Host, Port: s.Port}
		sv := serverView{Host: s.Host, Port: s.Port, Level: s.Level, Zone: s.Zone, Origin: originOf(s), Serving: !s.Down && s.Health == nil}
		if hb, ok := checks[k]; ok {
			sv.Heartbeat = &hb
		}
		if f, ok := fb[k]; ok && (f.Out || f.TotalFailures > 0 || f.TotalSuccesses > 0) {
			sv.Feedback = &f
		}
		switch {
		case s.Down:
			sv.State, sv.DecidedBy = stateDown, sv.Origin
		case s.Health != nil:
			sv.State, sv.DecidedBy = stateOf(s.Health.Source), deciderOf(s.Health.Source)
			sv.Reason, sv.Since = s.Health.Reason, s.Health.Since
		case sv.Heartbeat != nil && !sv.Heartbeat.Healthy:
			// Out by the checker's count but still in the published state: kept for protection (or the
			// verdict is a moment from being published).
			sv.State, sv.DecidedBy = stateUnhealthy, "heartbeat"
			sv.Reason, sv.Since = sv.Heartbeat.LastError, sv.Heartbeat.Since
			if uv.Protected {
				sv.Note = keptNote
			}
		case sv.Feedback != nil && sv.Feedback.Out:
			sv.State, sv.DecidedBy = stateEjected, "feedback"
			sv.Reason, sv.Since = sv.Feedback.Reason, sv.Feedback.Since
			if uv.Protected {
				sv.Note = keptNote
			}
		case sv.Heartbeat != nil:
			sv.State, sv.DecidedBy, sv.Since = stateHealthy, "heartbeat", sv.Heartbeat.Since
		case strings.HasPrefix(sv.Origin, "consul"):
			// The catalog lists only instances whose Consul checks pass (or warn).
			sv.State, sv.DecidedBy = stateHealthy, "consul"
		default:
			sv.State, sv.DecidedBy = stateUnchecked, sv.Origin
			if checked && check.ByEnvoy() {
				sv.Note = "checked by each Envoy; dynup does not see those results"
			}
		}
		uv.Servers = append(uv.Servers, sv)
	}
	return uv
}

// keptNote explains a server a health source took out that still takes traffic.
const keptNote = "kept in service: every server of the upstream is out and the upstream is protected"

func stateOf(source string) string {
	if source == feedback.Source {
		return stateEjected
	}
	return stateUnhealthy
}

// deciderOf names a store health source as /status shows it.
func deciderOf(source string) string {
	if source == healthcheck.Source {
		return "heartbeat"
	}
	return source
}

func originOf(s *registry.Server) string {
	if s.Source == "" {
		return "admin"
	}
	return s.Source
}

// feedbackBody is POST /feedback: checkups' feedback_status(skey, host, port, failed) as JSON.
type feedbackBody struct {
	Upstream string `json:"upstream"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Failed   *bool  `json:"failed"`
	// Node names the reporter; failures from different reporters count together either way. Default:
	// the client's address.
	Node string `json:"node"`
}

// maxFeedbackBody bounds a feedback body, which is a few short fields.
const maxFeedbackBody = 4 << 10

// POST /feedback
func (h *healthHandlers) feedback(c *gin.Context) {
	if h.Health.Tracker == nil {
		fail(c, http.StatusServiceUnavailable, "", "failure feedback is turned off (--feedback=false)")
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxFeedbackBody))
	if err != nil {
		failErr(c, err)
		return
	}
	var b feedbackBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		fail(c, http.StatusBadRequest, "body", "decode body error: "+err.Error()+` (want {"upstream":"name","host":"10.0.0.1","port":80,"failed":true})`)
		return
	}
	if field, msg := b.check(); field != "" {
		fail(c, http.StatusBadRequest, field, msg)
		return
	}
	r := feedback.Report{Upstream: b.Upstream, Host: b.Host, Port: b.Port, Reporter: "http:" + b.Node}
	if b.Node == "" {
		r.Reporter = "http:" + c.ClientIP()
	}
	if *b.Failed {
		r.Failures = 1
	} else {
		r.Successes = 1
	}
	st, err := h.Health.Tracker.Report(r)
	var unknown *feedback.UnknownError
	if errors.As(err, &unknown) {
		fail(c, http.StatusNotFound, unknown.Field, unknown.Msg)
		return
	}
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": 200, "server": st})
}

func (b *feedbackBody) check() (field, msg string) {
	switch {
	case b.Upstream == "":
		return "upstream", "is required"
	case b.Host == "":
		return "host", "is required"
	case b.Port < 1 || b.Port > 65535:
		return "port", "is required, 1-65535"
	case b.Failed == nil:
		return "failed", "is required (true for a failure, false for a success)"
	case len(b.Node) > 253:
		return "node", "is longer than 253 characters"
	}
	if _, err := netip.ParseAddr(b.Host); err != nil {
		return "host", b.Host + " is not an IP address"
	}
	return "", ""
}
