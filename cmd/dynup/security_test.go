package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/test/harness"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/serve"
	"github.com/dynup/dynup/xds/translate"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func parseSecurity(t *testing.T, args ...string) (*securityFlags, error) {
	t.Helper()
	t.Setenv("DYNUP_ADMIN_TOKEN", "")
	var f securityFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs)
	addr := "127.0.0.1:1995"
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if fs.NArg() > 0 {
		addr = fs.Arg(0)
	}
	return &f, f.check(addr)
}

func TestAdminOffLoopbackNeedsAToken(t *testing.T) {
	const tok = "0123456789abcdef0123"
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"127.0.0.1:1995"}, true},
		{[]string{"[::1]:1995"}, true},
		{[]string{"localhost:1995"}, true},
		{[]string{"0.0.0.0:1995"}, false},
		{[]string{":1995"}, false},
		{[]string{"[::]:1995"}, false},
		{[]string{"10.1.2.3:1995"}, false},
		{[]string{"dynup.internal:1995"}, false},
		{[]string{"--admin-token", tok, "0.0.0.0:1995"}, true},
		{[]string{"--admin-insecure-no-token", "0.0.0.0:1995"}, true}, // the compose demo's private network
		{[]string{"--admin-token", "short", "127.0.0.1:1995"}, false},
		{[]string{"--admin-token", "has a space in it......", "127.0.0.1:1995"}, false},
	} {
		f, err := parseSecurity(t, tc.args...)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok=%v", tc.args, err, tc.ok)
		}
		if err != nil && len(tc.args) == 1 && !strings.Contains(err.Error(), "without a token") {
			t.Errorf("%v: %q does not say why", tc.args, err)
		}
		if err == nil && tc.args[0] == "--admin-token" && (len(f.tokens) != 1 || f.tokens[0].Secret != tok) {
			t.Errorf("%v: tokens %v", tc.args, f.tokens)
		}
	}
	t.Setenv("DYNUP_ADMIN_TOKEN", tok) // read as the flag's default
	var f securityFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f.register(fs)
	if err := f.check("0.0.0.0:1995"); err != nil || len(f.tokens) != 1 {
		t.Fatalf("$DYNUP_ADMIN_TOKEN: %v %v", err, f.tokens)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# rotated 2026-11\nops 0123456789abcdef0123\n\n  fedcba9876543210fedc  \ndeploy aaaaaaaaaaaaaaaaaaaaaa\n")
	f, err := parseSecurity(t, "--admin-token-file", good, "0.0.0.0:1995")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tok := range f.tokens {
		got = append(got, tok.ID+"="+tok.Secret)
	}
	if want := "ops=0123456789abcdef0123 line-4=fedcba9876543210fedc deploy=aaaaaaaaaaaaaaaaaaaaaa"; strings.Join(got, " ") != want {
		t.Fatalf("tokens %v, want %s", got, want)
	}
	auth := f.adminAuth(quietLog())
	if len(auth.Tokens) != 3 || auth.OpenReads || auth.LoopbackHostOnly {
		t.Fatalf("auth config %+v", auth)
	}
	for name, text := range map[string]string{
		"empty":     "# nothing here\n\n",
		"short":     "ops short\n",
		"three":     "ops 0123456789abcdef0123 extra\n",
		"duplicate": "ops 0123456789abcdef0123\nops fedcba9876543210fedc\n",
	} {
		if _, err := parseSecurity(t, "--admin-token-file", write(name, text)); err == nil {
			t.Errorf("token file %s accepted", name)
		}
	}
	if _, err := parseSecurity(t, "--admin-token-file", filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file is accepted")
	}
	if f, err := parseSecurity(t, "127.0.0.1:1995"); err != nil || !f.adminAuth(nil).LoopbackHostOnly {
		t.Errorf("without a token the Host check must be on: %v", err)
	}
}

func TestTLSFlagsGoTogether(t *testing.T) {
	for _, args := range [][]string{
		{"--admin-tls-cert", "c.pem"},
		{"--xds-tls-key", "k.pem"},
		{"--xds-client-ca", "ca.pem"},
		{"--xds-max-recv-bytes", "1000"},
		{"--xds-max-streams", "-1"},
	} {
		if _, err := parseSecurity(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client certificate, written as PEM files.
type pki struct {
	dir                           string
	ca                            *x509.Certificate
	caKey                         *ecdsa.PrivateKey
	caFile, serverCert, serverKey string
	clientCert, clientKey         string
	pool                          *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dynup test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	p.caFile = p.writePEM(t, "ca.pem", "CERTIFICATE", der)
	p.serverCert, p.serverKey = p.issue(t, "server", 2, x509.ExtKeyUsageServerAuth, p.ca, p.caKey)
	p.clientCert, p.clientKey = p.issue(t, "client", 3, x509.ExtKeyUsageClientAuth, p.ca, p.caKey)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue writes a certificate signed by parent (itself when parent is nil) and its key.
func (p *pki) issue(t *testing.T, name string, serial int64, usage x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (string, string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.writePEM(t, name+".pem", "CERTIFICATE", der), p.writePEM(t, name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

func (p *pki) writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *pki) clientTLS(t *testing.T, certFile, keyFile string) *tls.Config {
	t.Helper()
	c := &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

// xdsServer runs dynup's serving pipeline in this process (as run wires it) with one upstream, on a
// loopback port, with the gRPC options the flags give.
func xdsServer(t *testing.T, f *securityFlags, servers ...registry.Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	backend, err := registry.NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.NewStore(ctx, backend)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) == 0 {
		servers = []registry.Server{{Host: "10.0.0.1", Port: 80}}
	}
	if _, err := store.PutUpstream(ctx, registry.Upstream{Name: "imgprocess", Servers: servers}, "admin"); err != nil {
		t.Fatal(err)
	}
	ro := rollout.New(store)
	pub := publish.New(translate.DefaultOptions(), quietLog(), ro)
	states, unsubscribe := store.Subscribe()
	pub.Publish(<-states)
	go pub.Run(states)
	opts, err := f.xdsServerOptions(quietLog())
	if err != nil {
		t.Fatal(err)
	}
	srv := serve.NewGRPCServer(ctx, pub.Cache(), nodes.NewTracker(ro, quietLog()), opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Stop(); unsubscribe(); cancel() })
	return lis.Addr().String()
}

// fetchClusters opens an ADS stream with creds, asks for clusters and returns their count, or the error.
func fetchClusters(addr string, creds credentials.TransportCredentials) (int, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return 0, err
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "tls-test", Cluster: "test"}, TypeUrl: resource.ClusterType}); err != nil {
		return 0, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	return len(resp.Resources), nil
}

func TestADSOverTLSAndMTLS(t *testing.T) {
	p := newPKI(t)
	strangerCert, strangerKey := p.issue(t, "stranger", 9, x509.ExtKeyUsageClientAuth, nil, nil) // self-signed

	tlsOnly, err := parseSecurity(t, "--xds-tls-cert", p.serverCert, "--xds-tls-key", p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	addr := xdsServer(t, tlsOnly)
	if n, err := fetchClusters(addr, credentials.NewTLS(p.clientTLS(t, "", ""))); err != nil || n != 1 {
		t.Fatalf("ADS over TLS: %d clusters, %v", n, err)
	}
	if _, err := fetchClusters(addr, insecure.NewCredentials()); err == nil {
		t.Fatal("a plaintext client was served on the TLS port")
	}
	if _, err := fetchClusters(addr, credentials.NewTLS(&tls.Config{ServerName: "127.0.0.1"})); err == nil {
		t.Fatal("a client that does not trust the CA completed the handshake")
	}

	mtls, err := parseSecurity(t, "--xds-tls-cert", p.serverCert, "--xds-tls-key", p.serverKey, "--xds-client-ca", p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	addr = xdsServer(t, mtls)
	if n, err := fetchClusters(addr, credentials.NewTLS(p.clientTLS(t, p.clientCert, p.clientKey))); err != nil || n != 1 {
		t.Fatalf("ADS over mTLS with a client certificate: %d clusters, %v", n, err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no client certificate":       p.clientTLS(t, "", ""),
		"a certificate of another CA": p.clientTLS(t, strangerCert, strangerKey),
	} {
		_, err := fetchClusters(addr, credentials.NewTLS(cfg))
		if err == nil {
			t.Fatalf("mTLS served a client with %s", name)
		}
		if c := status.Code(err); c != codes.Unavailable {
			t.Errorf("%s: %v, want Unavailable (handshake refused)", name, err)
		}
	}
}

// A real gRPC-Go xDS client, configured by its bootstrap for mTLS (gRFC A65), gets its configuration
// from dynup and reaches the backend.
func TestGRPCXDSClientOverMTLS(t *testing.T) {
	p := newPKI(t)
	f, err := parseSecurity(t, "--xds-tls-cert", p.serverCert, "--xds-tls-key", p.serverKey, "--xds-client-ca", p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	b := harness.StartBackend(t, "A")
	addr := xdsServer(t, f, registry.Server{Host: b.Host, Port: b.Port})
	bootstrap, _ := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": addr,
			"channel_creds": []any{map[string]any{"type": "tls", "config": map[string]any{
				"ca_certificate_file": p.caFile, "certificate_file": p.clientCert, "private_key_file": p.clientKey}}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{"id": "mtls-client", "cluster": "test"},
	})
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///imgprocess", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	harness.Until(t, 20*time.Second, func() error {
		who, err := harness.Who(context.Background(), cc)
		if err == nil && who != "A" {
			err = fmt.Errorf("reached %s", who)
		}
		return err
	})
}

// Certificates rotate without a restart: new connections get the files as they are now.
func TestTLSFilesReloadWhenChanged(t *testing.T) {
	p := newPKI(t)
	f, err := parseSecurity(t, "--xds-tls-cert", p.serverCert, "--xds-tls-key", p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	addr := xdsServer(t, f)
	serial := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d, want the first server certificate", s)
	}
	cert, key := p.issue(t, "server-next", 42, x509.ExtKeyUsageServerAuth, p.ca, p.caKey)
	rotate := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute) // a distinct modification time, whatever the file system's resolution
		os.Chtimes(to, later, later)
	}
	rotate(key, p.serverKey)
	rotate(cert, p.serverCert)
	if s := serial(); s != 42 {
		t.Fatalf("serial %d after rotation, want 42", s)
	}
	// A half-written file keeps the last good pair.
	if err := os.WriteFile(p.serverCert, []byte("-----BEGIN CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 42 {
		t.Fatalf("serial %d with a broken file, want the last good 42", s)
	}
}

func TestAdminOverTLS(t *testing.T) {
	p := newPKI(t)
	f, err := parseSecurity(t, "--admin-tls-cert", p.serverCert, "--admin-tls-key", p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.adminTLS(quietLog())
	if err != nil || cfg == nil {
		t.Fatalf("admin TLS: %v", err)
	}
	srv := newAdminServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), cfg)
	if srv.WriteTimeout == 0 || srv.IdleTimeout == 0 || srv.ReadHeaderTimeout == 0 || srv.MaxHeaderBytes == 0 {
		t.Fatalf("admin server without slow-client limits: %+v", srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.serveAdmin(srv, lis)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(t, "", "")}}
	resp, err := client.Get("https://" + lis.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("HTTPS answer %q", body)
	}
	if resp, err := http.Get("http://" + lis.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served on the TLS port")
		}
	}
	if none, err := (&securityFlags{}).adminTLS(nil); none != nil || err != nil {
		t.Fatalf("no TLS flags: %v %v", none, err)
	}
}

// --xds-max-streams refuses streams beyond the limit with RESOURCE_EXHAUSTED; closing one makes room.
func TestXDSStreamLimit(t *testing.T) {
	f, err := parseSecurity(t, "--xds-max-streams", "1")
	if err != nil {
		t.Fatal(err)
	}
	addr := xdsServer(t, f)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	open := func() (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err == nil {
			err = s.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "n", Cluster: "test"}, TypeUrl: resource.ClusterType})
		}
		if err == nil {
			_, err = s.Recv()
		}
		return cancel, err
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	cancel, err := open()
	cancel()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second stream over the limit of 1: %v, want ResourceExhausted", err)
	}
	first()
	harness.Until(t, 10*time.Second, func() error {
		cancel, err := open()
		cancel()
		return err
	})
}

// --xds-max-recv-bytes bounds what one node message may make dynup buffer.
func TestXDSMaxRecvBytes(t *testing.T) {
	f, err := parseSecurity(t, "--xds-max-recv-bytes", "65536")
	if err != nil {
		t.Fatal(err)
	}
	addr := xdsServer(t, f)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, tc := range []struct {
		names int
		ok    bool
	}{{100, true}, {5000, false}} {
		names := make([]string, tc.names)
		for i := range names {
			names[i] = fmt.Sprintf("cluster-%020d", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err == nil {
			err = s.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "n", Cluster: "test"}, TypeUrl: resource.ClusterType, ResourceNames: names})
		}
		if err == nil {
			_, err = s.Recv()
		}
		cancel()
		if tc.ok && err != nil {
			t.Errorf("%d names: %v", tc.names, err)
		}
		if !tc.ok && status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%d names (over 64 KiB): %v, want ResourceExhausted", tc.names, err)
		}
	}
}
