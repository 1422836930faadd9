package healthcheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// prober runs one probe of a server. Every probe opens its own connection and closes it, as checkups'
// heartbeat does: a check that reused a connection would miss a server that no longer accepts new ones.
type prober struct {
	http1, http2 *http.Client
}

func newProber() *prober {
	client := func(h2c bool) *http.Client {
		t := &http.Transport{DisableKeepAlives: true, Proxy: nil, MaxResponseHeaderBytes: 64 << 10}
		if h2c {
			t.Protocols = new(http.Protocols)
			t.Protocols.SetUnencryptedHTTP2(true)
		}
		return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer; its status decides
		}}
	}
	return &prober{http1: client(false), http2: client(true)}
}

// probe returns nil when the server at addr passes c, or why it failed.
func (p *prober) probe(ctx context.Context, c Check, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var err error
	switch c.Type {
	case "tcp":
		err = probeTCP(ctx, addr)
	case "http":
		err = p.probeHTTP(ctx, c, addr)
	case "grpc":
		err = probeGRPC(ctx, c, addr)
	case "redis":
		err = probeRedis(ctx, c, addr)
	default:
		err = fmt.Errorf("unknown check type %q", c.Type)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s check timed out after %s", c.Type, c.Timeout)
	}
	return err
}

func probeTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (p *prober) probeHTTP(ctx context.Context, c Check, addr string) error {
	req, err := http.NewRequestWithContext(ctx, c.Method, "http://"+addr+c.Path, nil)
	if err != nil {
		return err
	}
	req.Host = c.Host
	req.Header.Set("User-Agent", "dynup-health-check")
	for _, h := range c.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	client := p.http1
	if c.HTTP2 {
		client = p.http2
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !c.Healthy(resp.StatusCode) {
		return fmt.Errorf("http status %d", resp.StatusCode)
	}
	return nil
}

func probeGRPC(ctx context.Context, c Check, addr string) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	for _, h := range c.Headers {
		ctx = metadata.AppendToOutgoingContext(ctx, strings.ToLower(h.Name), h.Value)
	}
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: c.GRPCService})
	if err != nil {
		return fmt.Errorf("grpc health: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc health: %s", s)
	}
	return nil
}

// probeRedis sends PING and, with a key, EXISTS key: like Envoy's Redis checker, the server fails while the
// key exists (a maintenance switch).
func probeRedis(ctx context.Context, c Check, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	r := bufio.NewReader(conn)
	reply := func(cmd ...string) (string, error) {
		var b strings.Builder
		b.WriteString("*" + strconv.Itoa(len(cmd)) + "\r\n")
		for _, a := range cmd {
			b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
		}
		if _, err := io.WriteString(conn, b.String()); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		return strings.TrimRight(line, "\r\n"), err
	}
	pong, err := reply("PING")
	if err != nil {
		return fmt.Errorf("redis PING: %w", err)
	}
	if pong != "+PONG" {
		return fmt.Errorf("redis PING answered %q", pong)
	}
	if c.RedisKey == "" {
		return nil
	}
	exists, err := reply("EXISTS", c.RedisKey)
	switch {
	case err != nil:
		return fmt.Errorf("redis EXISTS: %w", err)
	case exists == ":1":
		return fmt.Errorf("redis key %q exists (maintenance)", c.RedisKey)
	case exists != ":0":
		return fmt.Errorf("redis EXISTS answered %q", exists)
	}
	return nil
}

// sleep waits d or until ctx ends, and says whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
