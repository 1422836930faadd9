package dyups

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dynup/dynup/registry"
)

// Format writes u as a dyups body, one directive per line, such that Parse reads back an equivalent
// upstream. Settings dyups cannot express (failover levels below the first backup, zones, several hash
// keys, gRPC or Redis checks, ...) are named in trailing '#' comments, which Parse and nginx skip, so a
// reader sees what the text leaves out. u should be valid.
func Format(u registry.Upstream) string {
	var b strings.Builder
	var lost []string
	var maxConns uint32
	if u.Connection != nil {
		maxConns = u.Connection.MaxConnections
	}
	for _, s := range u.Servers {
		b.WriteString(serverLine(s, maxConns))
		if s.Level > 1 {
			lost = append(lost, fmt.Sprintf("server %s is at level %d; dyups has only backup (level 1)", address(s), s.Level))
		}
		if s.Zone != "" {
			lost = append(lost, fmt.Sprintf("server %s is in zone %q", address(s), s.Zone))
		}
	}
	lost = append(lost, writeLB(&b, u.LB)...)
	if u.Keepalive > 0 {
		fmt.Fprintf(&b, "keepalive %d;\n", u.Keepalive)
	}
	lost = append(lost, writeCheck(&b, u.HealthCheck)...)
	// Comments must stay one line each: a stray newline would turn the rest into a directive.
	oneLine := strings.NewReplacer("\n", " ", "\r", " ")
	for _, l := range lost {
		b.WriteString("# not expressible in dyups: " + oneLine.Replace(l) + "\n")
	}
	return b.String()
}

func serverLine(s registry.Server, maxConns uint32) string {
	line := "server " + address(s)
	if s.Weight > 0 {
		line += " weight=" + strconv.Itoa(s.Weight)
	}
	if s.MaxFails != nil {
		line += " max_fails=" + strconv.Itoa(*s.MaxFails)
	}
	if s.FailTimeout != nil {
		line += " fail_timeout=" + duration(s.FailTimeout.Duration)
	}
	if maxConns > 0 {
		// Repeated on every server, so that Parse's "smallest max_conns" gives the same limit back.
		line += " max_conns=" + strconv.FormatUint(uint64(maxConns), 10)
	}
	if s.Backup || s.Level > 0 {
		line += " backup"
	}
	if s.Down {
		line += " down"
	}
	return line + ";\n"
}

func address(s registry.Server) string {
	if strings.Contains(s.Host, ":") {
		return "[" + s.Host + "]:" + strconv.Itoa(s.Port)
	}
	return s.Host + ":" + strconv.Itoa(s.Port)
}

// duration writes nginx time syntax where it exists (whole seconds or milliseconds); finer values fall
// back to Go's syntax, which only Parse reads.
func duration(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

func writeLB(b *strings.Builder, lb *registry.LoadBalancing) (lost []string) {
	if lb == nil {
		return nil
	}
	knobs := *lb
	knobs.Policy, knobs.HashKeys = "", nil
	if !reflect.ValueOf(knobs).IsZero() {
		lost = append(lost, "lb options besides the policy and one hash key")
	}
	switch lb.Policy {
	case "", "round_robin":
	case "least_request":
		b.WriteString("least_conn;\n")
	case "random":
		b.WriteString("random;\n")
	case "ring_hash", "maglev":
		if lb.Policy == "maglev" {
			lost = append(lost, "maglev (written as a ring hash)")
		}
		if len(lb.HashKeys) == 0 {
			return append(lost, lb.Policy+" without a hash key")
		}
		if len(lb.HashKeys) > 1 {
			lost = append(lost, fmt.Sprintf("%d fallback hash keys", len(lb.HashKeys)-1))
		}
		v, ok := hashVar(lb.HashKeys[0])
		if !ok {
			return append(lost, "the hash key")
		}
		fmt.Fprintf(b, "hash %s consistent;\n", v)
	default:
		lost = append(lost, fmt.Sprintf("balancing policy %q", lb.Policy))
	}
	return lost
}

// hashVar is the inverse of hashKey.
func hashVar(k registry.HashKey) (string, bool) {
	var v string
	switch {
	case k.SourceIP:
		return "$remote_addr", true
	case k.Path:
		return "$request_uri", true // like :path, it keeps the query string
	case k.QueryParam != "":
		v = "$arg_" + k.QueryParam
	case k.Header != "":
		v = "$http_" + strings.ReplaceAll(strings.ToLower(k.Header), "-", "_")
	case k.Cookie != nil && k.Cookie.TTL == nil && k.Cookie.Path == "":
		v = "$cookie_" + k.Cookie.Name
	default:
		return "", false
	}
	_, err := hashKey(v)
	return v, err == nil
}

func writeCheck(b *strings.Builder, hc *registry.HealthCheck) (lost []string) {
	if hc == nil {
		return nil
	}
	if hc.Type == "" {
		if reflect.ValueOf(*hc).IsZero() || hc.Enabled != nil && !*hc.Enabled {
			return nil
		}
		return []string{"health check settings without a type"}
	}
	if hc.Enabled != nil && !*hc.Enabled {
		return []string{fmt.Sprintf("a disabled %s health check", hc.Type)}
	}
	if hc.Type != "http" && hc.Type != "tcp" {
		return []string{fmt.Sprintf("the %s health check", hc.Type)}
	}
	line := "check type=" + hc.Type
	if hc.Interval != nil {
		line += " interval=" + millis64(hc.Interval.Duration)
	}
	if hc.Timeout != nil {
		line += " timeout=" + millis64(hc.Timeout.Duration)
	}
	if hc.HealthyThreshold > 0 {
		line += " rise=" + strconv.Itoa(hc.HealthyThreshold)
	}
	if hc.UnhealthyThreshold > 0 {
		line += " fall=" + strconv.Itoa(hc.UnhealthyThreshold)
	}
	b.WriteString(line + ";\n")
	if hc.Checker != "" || hc.Jitter != nil {
		lost = append(lost, "health check checker and jitter")
	}
	if hc.Type != "http" {
		if hc.HTTP != nil || len(hc.Headers) > 0 {
			lost = append(lost, "http probe settings of a tcp check")
		}
		return lost
	}
	h := registry.HTTPCheck{}
	if hc.HTTP != nil {
		h = *hc.HTTP
	}
	fmt.Fprintf(b, "check_http_send %s;\n", quote(probe(h, hc.Headers)))
	var classes []string
	for _, r := range h.ExpectedStatuses {
		if r.Start%100 != 0 || r.End%100 != 0 {
			lost = append(lost, fmt.Sprintf("expected statuses [%d, %d)", r.Start, r.End))
			continue
		}
		for c := r.Start; c < r.End; c += 100 {
			classes = append(classes, fmt.Sprintf("http_%dxx", c/100))
		}
	}
	if len(classes) > 0 {
		fmt.Fprintf(b, "check_http_expect_alive %s;\n", strings.Join(classes, " "))
	}
	if len(h.BadStatuses) > 0 {
		lost = append(lost, "bad statuses (checkups' statuses=false)")
	}
	return lost
}

// probe writes the raw request the check module sends, the inverse of slardar.ParseProbe.
func probe(h registry.HTTPCheck, headers []registry.HeaderPair) string {
	method, path := h.Method, h.Path
	if method == "" {
		method = "GET"
	}
	if path == "" {
		path = "/"
	}
	req := method + " " + path + " HTTP/1.0\r\n"
	if h.Host != "" {
		req += "Host: " + h.Host + "\r\n"
	}
	for _, hp := range headers {
		req += hp.Name + ": " + hp.Value + "\r\n"
	}
	return req + "\r\n"
}

// quote writes a double-quoted nginx word, escaping what split unescapes.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", `\r`, "\n", `\n`, "\t", `\t`).Replace(s) + `"`
}

// millis64 writes a check-module duration, which is whole milliseconds (at least 1).
func millis64(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Millisecond-1)/time.Millisecond), 1), 10)
}
