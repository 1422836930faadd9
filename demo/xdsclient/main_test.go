package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// The walkthrough runs it end to end (test/demolocal); these are the parts a run there does not reach.

func TestRefusesToStartWithoutABootstrap(t *testing.T) {
	t.Setenv("GRPC_XDS_BOOTSTRAP", "")
	t.Setenv("GRPC_XDS_BOOTSTRAP_CONFIG", "")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--listen", "127.0.0.1:0"}, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "GRPC_XDS_BOOTSTRAP") {
		t.Errorf("stderr %q does not say what to set", stderr.String())
	}
}

func TestForwardsOnlyXHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("X-User", "alice")
	h.Add("X-Trace", "a")
	h.Add("X-Trace", "b")
	h.Set("Authorization", "secret")
	h.Set("Content-Type", "text/plain")
	md := forwardedHeaders(h)
	if len(md) != 2 || md.Get("x-user")[0] != "alice" || len(md.Get("x-trace")) != 2 {
		t.Errorf("metadata %v, want x-user and both x-trace values only", md)
	}
}

func TestStatusOfFailedCalls(t *testing.T) {
	for c, want := range map[codes.Code]int{
		codes.Unavailable: 503, codes.DeadlineExceeded: 504, codes.Internal: 502, codes.Unimplemented: 502,
	} {
		if got := httpStatus(c); got != want {
			t.Errorf("%s: %d, want %d", c, got, want)
		}
	}
}

func TestNoHostIsABadRequest(t *testing.T) {
	g := &gateway{conns: nil}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = ""
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("%d %q, want 400", rec.Code, rec.Body.String())
	}
}

// Every distinct Host opens a channel; past maxHosts the gateway refuses instead of growing without end.
func TestChannelsAreBounded(t *testing.T) {
	g := &gateway{conns: map[string]*grpc.ClientConn{}}
	defer g.close()
	for i := range maxHosts {
		if _, err := g.conn(strings.Repeat("h", i+1)); err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
	}
	if _, err := g.conn("one-more"); err == nil {
		t.Error("channel beyond maxHosts opened")
	}
	if _, err := g.conn("h"); err != nil {
		t.Errorf("an open host refused: %v", err)
	}
}
