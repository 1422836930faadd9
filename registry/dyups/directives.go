package dyups

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/slardar"
)

// server reads "server addr [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]".
func (p *parsed) server(d directive) error {
	if len(d.args) < 2 {
		return d.errorf("needs an address, e.g. server 127.0.0.1:8080")
	}
	host, port, err := parseAddr(d.args[1])
	if err != nil {
		return d.errorf("%v", err)
	}
	s := registry.Server{Host: host, Port: port}
	for _, param := range d.args[2:] {
		key, value, hasValue := strings.Cut(param, "=")
		switch {
		case param == "backup":
			s.Backup, s.Level = true, 1
		case param == "down":
			s.Down = true
		case key == "weight" && hasValue:
			if s.Weight, err = count(value, 1); err != nil {
				return d.errorf("weight: %v", err)
			}
		case key == "max_fails" && hasValue:
			n, err := count(value, 0)
			if err != nil {
				return d.errorf("max_fails: %v", err)
			}
			s.MaxFails = &n
		case key == "fail_timeout" && hasValue:
			t, err := registry.ParseDuration(value)
			if err != nil {
				return d.errorf("fail_timeout: %v", err)
			}
			s.FailTimeout = &t
		case key == "max_conns" && hasValue:
			n, err := count(value, 0)
			if err != nil {
				return d.errorf("max_conns: %v", err)
			}
			if c := uint32(n); c > 0 && (p.maxConns == 0 || c < p.maxConns) {
				p.maxConns = c
			}
		default:
			return d.errorf("unknown server parameter %q (known: weight=, max_fails=, fail_timeout=, max_conns=, backup, down)", param)
		}
	}
	p.servers = append(p.servers, s)
	return nil
}

// parseAddr reads ip:port or [ipv6]:port; nginx's default port is 80. Envoy endpoints are addresses, so
// host names are refused here rather than later without the directive's position.
func parseAddr(addr string) (string, int, error) {
	host, port := addr, "80"
	if rest, ok := strings.CutPrefix(addr, "["); ok {
		h, after, ok := strings.Cut(rest, "]")
		if !ok {
			return "", 0, fmt.Errorf("address %q lacks its closing ]", addr)
		}
		host = h
		if after != "" {
			if port, ok = strings.CutPrefix(after, ":"); !ok {
				return "", 0, fmt.Errorf("address %q is not [ipv6]:port", addr)
			}
		}
	} else if strings.Count(addr, ":") > 1 {
		return "", 0, fmt.Errorf("IPv6 address %q needs brackets, e.g. [::1]:80", addr)
	} else if h, p, ok := strings.Cut(addr, ":"); ok {
		host, port = h, p
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not an IP address (dynup takes addresses; register host names through Consul)", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not 1-65535", port)
	}
	return ip.String(), n, nil
}

// balance reads the balancing directives; an upstream has one method, so they exclude each other.
func (p *parsed) balance(d directive) error {
	if err := p.once("balancing method", d); err != nil {
		return err
	}
	switch name, args := d.args[0], d.args[1:]; {
	case name == "ip_hash" && len(args) == 0:
		// Envoy hashes the whole address, where nginx's ip_hash takes an IPv4 address's first three octets.
		p.lb = ring(registry.HashKey{SourceIP: true})
	case name == "least_conn" && len(args) == 0:
		p.lb = &registry.LoadBalancing{Policy: "least_request"}
	case name == "random" && len(args) == 0:
		p.lb = &registry.LoadBalancing{Policy: "random"}
	case name == "random" && args[0] == "two" && (len(args) == 1 || len(args) == 2 && args[1] == "least_conn"):
		// nginx's "pick two at random, take the one with fewer connections" is Envoy's and gRPC's
		// least_request with its default of two choices.
		p.lb = &registry.LoadBalancing{Policy: "least_request"}
	case name == "hash" && (len(args) == 1 || len(args) == 2 && args[1] == "consistent"),
		name == "consistent_hash" && len(args) == 1:
		// Without "consistent" nginx hashes modulo the server count; a ring only moves fewer keys.
		key, err := hashKey(args[0])
		if err != nil {
			return d.errorf("%v", err)
		}
		p.lb = ring(key)
	default:
		return d.errorf("wrong arguments (use ip_hash, least_conn, random, random two [least_conn], hash $var [consistent] or consistent_hash $var)")
	}
	return nil
}

func ring(key registry.HashKey) *registry.LoadBalancing {
	return &registry.LoadBalancing{Policy: "ring_hash", HashKeys: []registry.HashKey{key}}
}

var varName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// hashKey maps the nginx variables Envoy can hash on; other variables (and "$host$uri" mixes) have no
// Envoy equivalent.
func hashKey(v string) (registry.HashKey, error) {
	switch v {
	case "$remote_addr":
		return registry.HashKey{SourceIP: true}, nil
	case "$uri", "$request_uri":
		// Envoy hashes :path, which keeps the query string that $uri drops.
		return registry.HashKey{Path: true}, nil
	}
	if n, ok := strings.CutPrefix(v, "$arg_"); ok && varName.MatchString(n) {
		return registry.HashKey{QueryParam: n}, nil
	}
	if n, ok := strings.CutPrefix(v, "$http_"); ok && varName.MatchString(n) {
		// nginx names a header in lower case with '_' for '-'.
		return registry.HashKey{Header: strings.ReplaceAll(strings.ToLower(n), "_", "-")}, nil
	}
	if n, ok := strings.CutPrefix(v, "$cookie_"); ok && varName.MatchString(n) {
		return registry.HashKey{Cookie: &registry.CookieKey{Name: n}}, nil
	}
	return registry.HashKey{}, fmt.Errorf("cannot hash on %q (use $remote_addr, $uri, $request_uri, $arg_NAME, $http_NAME or $cookie_NAME)", v)
}

func (p *parsed) keepaliveDirective(d directive) error {
	if err := p.once("keepalive", d); err != nil {
		return err
	}
	if len(d.args) != 2 {
		return d.errorf("needs one number, e.g. keepalive 16")
	}
	n, err := count(d.args[1], 1)
	if err != nil {
		return d.errorf("%v", err)
	}
	p.keepalive = n
	return nil
}

// checkDirective reads nginx_upstream_check_module's "check"; interval and timeout are in milliseconds.
func (p *parsed) checkDirective(d directive) error {
	if err := p.once("health check", d); err != nil {
		return err
	}
	hc := registry.HealthCheck{Type: "tcp"} // the check module's default type
	for _, param := range d.args[1:] {
		key, value, _ := strings.Cut(param, "=")
		var err error
		switch key {
		case "interval":
			hc.Interval, err = millis(value)
		case "timeout":
			hc.Timeout, err = millis(value)
		case "rise":
			hc.HealthyThreshold, err = count(value, 1)
		case "fall":
			hc.UnhealthyThreshold, err = count(value, 1)
		case "type":
			if value != "http" && value != "tcp" {
				err = fmt.Errorf("%q is not supported (use http or tcp)", value)
			}
			hc.Type = value
		case "default_down":
			// Envoy has no per-check initial state to set; the value is checked and otherwise ignored.
			if value != "true" && value != "false" {
				err = fmt.Errorf("%q is not true or false", value)
			}
		default:
			err = fmt.Errorf("is unknown (known: interval=, rise=, fall=, timeout=, type=, default_down=)")
		}
		if err != nil {
			return d.errorf("%s: %v", key, err)
		}
	}
	p.check = &hc
	return nil
}

func (p *parsed) httpSend(d directive) error {
	if err := p.once("http probe", d); err != nil {
		return err
	}
	if len(d.args) != 2 {
		return d.errorf("needs one quoted request, e.g. check_http_send \"GET /status HTTP/1.0\\r\\n\\r\\n\"")
	}
	h, headers, err := slardar.ParseProbe(d.args[1])
	if err != nil {
		return d.errorf("%v", err)
	}
	p.probe, p.headers = &h, headers
	return nil
}

// expectAlive turns http_2xx ... http_5xx into status ranges, joining neighbours ([200,300)+[300,400)).
func (p *parsed) expectAlive(d directive) error {
	if err := p.once("expected statuses", d); err != nil {
		return err
	}
	if len(d.args) < 2 {
		return d.errorf("needs at least one of http_1xx ... http_5xx")
	}
	var classes []int
	for _, a := range d.args[1:] {
		c, ok := strings.CutPrefix(a, "http_")
		if len(c) != 3 || !ok || c[0] < '1' || c[0] > '5' || c[1:] != "xx" {
			return d.errorf("%q is not one of http_1xx ... http_5xx", a)
		}
		classes = append(classes, int(c[0]-'0')*100)
	}
	slices.Sort(classes)
	for _, start := range slices.Compact(classes) {
		if n := len(p.expect); n > 0 && p.expect[n-1].End == start {
			p.expect[n-1].End += 100
			continue
		}
		p.expect = append(p.expect, registry.StatusRange{Start: start, End: start + 100})
	}
	return nil
}

// count reads a decimal number of at least lowest.
func count(s string, lowest int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lowest || n > 1<<30 {
		return 0, fmt.Errorf("%q is not a number of at least %d", s, lowest)
	}
	return n, nil
}

func millis(s string) (*registry.Duration, error) {
	n, err := count(s, 1)
	if err != nil {
		return nil, fmt.Errorf("%q is not a positive number of milliseconds, e.g. 3000", s)
	}
	return &registry.Duration{Duration: time.Duration(n) * time.Millisecond}, nil
}
