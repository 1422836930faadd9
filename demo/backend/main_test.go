package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

func TestHandlerAnswersWithItsName(t *testing.T) {
	srv := httptest.NewServer(handler("imgprocess-1", grpc.NewServer()))
	defer srv.Close()
	for _, method := range []string{"GET", "POST", "DELETE"} {
		req, _ := http.NewRequest(method, srv.URL+"/any/path?x=1", strings.NewReader("body"))
		req.Host = "imgprocess" // what Envoy forwards: the virtual host's name, not the backend's
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "imgprocess-1\n" || resp.Header.Get("X-Backend") != "imgprocess-1" {
			t.Errorf("%s: %d %q X-Backend=%q", method, resp.StatusCode, body, resp.Header.Get("X-Backend"))
		}
	}
}

// start runs the backend on a free loopback port; stop cancels it and returns its exit status.
func start(t *testing.T, args ...string) (addr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	exit := make(chan int, 1)
	var stderr bytes.Buffer // written only before ready and after cancel, never while the test reads it
	go func() { exit <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), &stderr, ready) }()
	select {
	case addr = <-ready:
	case code := <-exit:
		cancel()
		t.Fatalf("run exited %d before serving: %s", code, stderr.String())
	}
	return addr, func() int { cancel(); return <-exit }
}

func get(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func TestRunServesUntilCancelled(t *testing.T) {
	addr, stop := start(t, "--name", "imageinfo-1")
	if body := get(t, addr); body != "imageinfo-1\n" {
		t.Errorf("body %q", body)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d after cancel", code)
	}
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Error("still serving after run returned")
	}
}

// The same port answers gRPC, as proxyless clients (the demo-local gateway) call it, and plain HTTP/2.
func TestGRPCAndH2COnTheSamePort(t *testing.T) {
	addr, stop := start(t, "--name", "imgprocess-2")
	defer stop()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetHostname() != "imgprocess-2" || resp.GetServerId() != "imgprocess-2" {
		t.Errorf("UnaryCall answered %v", resp)
	}
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{}); err == nil {
		t.Error("EmptyCall succeeded; only UnaryCall is implemented")
	}

	// An HTTP/2 client without TLS (as an Envoy cluster with HTTP/2 options connects) gets the name too.
	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	r, err := h2c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	h2c.CloseIdleConnections()
	if r.ProtoMajor != 2 || string(body) != "imgprocess-2\n" {
		t.Errorf("h2c: %s %q", r.Proto, body)
	}
}

func TestNameDefaultsToEnvironment(t *testing.T) {
	t.Setenv("BACKEND_NAME", "from-env")
	addr, stop := start(t)
	defer stop()
	if body := get(t, addr); body != "from-env\n" {
		t.Errorf("body %q, want from-env", body)
	}
}

func TestBadFlagOrAddressFails(t *testing.T) {
	if code := run(context.Background(), []string{"--bogus"}, io.Discard, nil); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"--addr", "127.0.0.1:99999"}, io.Discard, nil); code != 1 {
		t.Errorf("bad address: exit %d, want 1", code)
	}
}
