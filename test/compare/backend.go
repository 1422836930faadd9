package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// backend is one instance of the benchmark's service, in this process. One port serves both protocols, as
// demo/backend does, so that one Consul registration is one server for nginx (HTTP/1.1) and for the gRPC
// xDS client (h2c): both sides then route to exactly the same set of instances. It answers with its id, so
// each side sees when a request lands on a new instance.
type backend struct {
	id   string
	port int
	srv  *http.Server
	gs   *grpc.Server
}

func startBackend(id string) (*backend, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, testService{id: id})
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Backend", id)
		io.WriteString(w, id+"\n")
	})}
	// gRPC clients speak HTTP/2 without TLS from their first byte (prior knowledge); nginx speaks HTTP/1.1.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(lis)
	return &backend{id: id, port: lis.Addr().(*net.TCPAddr).Port, srv: srv, gs: gs}, nil
}

// stop stops the instance as a process stopped by a deploy does on SIGTERM: it stops accepting, lets
// in-flight requests finish (HTTP/2 connections get a GOAWAY), closes idle keep-alive connections, and after
// a second closes whatever is left.
func (b *backend) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if b.srv.Shutdown(ctx) != nil {
		b.srv.Close()
	}
	b.gs.Stop()
}

type testService struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (s testService) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Hostname: s.id, ServerId: s.id}, nil
}
