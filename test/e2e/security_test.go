package e2e

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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	"github.com/dynup/dynup/test/harness"
)

// Security as the binary wires it (docs/security.md): the admin API off loopback without a token does
// not start; with a token, requests without it are refused, writes are audited without the token; xDS
// over mTLS serves a gRPC-Go client with a certificate and refuses one without.

const e2eToken = "e2e-0123456789abcdef0123456789"

// The check happens before anything is bound, so this binds nothing but loopback.
func TestAdminOffLoopbackWithoutTokenDoesNotStart(t *testing.T) {
	cmd := exec.Command(harness.DynupBinary(t), "--admin-addr", "0.0.0.0:0", "--xds-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "DYNUP_ADMIN_TOKEN=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without a token") || strings.Contains(string(out), "listening") {
		t.Fatalf("dynup on 0.0.0.0 without a token: %v\n%s", err, out)
	}
}

func adminRequest(t *testing.T, d *harness.Dynup, method, path, body, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.AdminAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAdminTokenAndAuditLog(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("ops "+e2eToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.StartDynup(t, t.TempDir(), "--admin-token-file", file)
	body := `{"servers":[{"host":"10.0.0.1","port":80}]}`
	for _, r := range []struct{ method, path, body string }{{"GET", "/list", ""}, {"POST", "/upstream/web", body}, {"GET", "/lua", ""}} {
		if resp, b := adminRequest(t, d, r.method, r.path, r.body, ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, `"status":401`) {
			t.Errorf("%s %s without the token: %d %s", r.method, r.path, resp.StatusCode, b)
		}
	}
	resp, b := adminRequest(t, d, "POST", "/upstream/web", body, e2eToken)
	change := resp.Header.Get("X-Dynup-Change")
	if resp.StatusCode != http.StatusOK || change == "" {
		t.Fatalf("POST with the token: %d %s", resp.StatusCode, b)
	}
	if resp, _ := adminRequest(t, d, "GET", "/healthz", "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz without a token: %d", resp.StatusCode)
	}
	harness.Until(t, 10*time.Second, func() error {
		for _, line := range strings.Split(d.Logs(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "audit" && rec["who"] == "token:ops" &&
				rec["method"] == "POST" && rec["path"] == "/upstream/web" && rec["change"] == change {
				return nil
			}
		}
		return fmt.Errorf("no audit line for change %s", change)
	})
	if strings.Contains(d.Logs(), e2eToken) {
		t.Fatal("the token appears in dynup's log")
	}
}

func TestAdminOpenReads(t *testing.T) {
	t.Setenv("DYNUP_ADMIN_TOKEN", e2eToken)
	d := harness.StartDynup(t, t.TempDir(), "--admin-open-reads")
	if resp, b := adminRequest(t, d, "GET", "/list", "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /list with open reads: %d %s", resp.StatusCode, b)
	}
	for _, r := range []struct{ method, path string }{{"GET", "/lua"}, {"DELETE", "/upstream/web"}} {
		if resp, b := adminRequest(t, d, r.method, r.path, "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without the token: %d %s", r.method, r.path, resp.StatusCode, b)
		}
	}
}

// e2ePKI writes a CA, a server certificate for 127.0.0.1 and a client certificate as PEM files.
func e2ePKI(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey := key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", der)
	for i, name := range []string{"server", "client"} {
		k := key()
		c := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, c, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "EC PRIVATE KEY", kd)
	}
	return dir
}

func TestXDSOverMTLS(t *testing.T) {
	dir := e2ePKI(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	d := harness.StartDynup(t, t.TempDir(), "--xds-tls-cert", p("server.pem"), "--xds-tls-key", p("server-key.pem"), "--xds-client-ca", p("ca.pem"))
	a := harness.StartBackend(t, "A")
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(a))

	bootstrap, _ := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{"server_uri": d.XDSAddr, "server_features": []any{"xds_v3"},
			"channel_creds": []any{map[string]any{"type": "tls", "config": map[string]any{
				"ca_certificate_file": p("ca.pem"), "certificate_file": p("client.pem"), "private_key_file": p("client-key.pem")}}}}},
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
	waitReachesOnly(t, cc, "A")

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(p("ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                 insecure.NewCredentials(),
		"TLS without a certificate": credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}),
	} {
		conn, err := grpc.NewClient(d.XDSAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err == nil {
			err = stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "intruder", Cluster: "test"}, TypeUrl: resource.ClusterType})
		}
		if err == nil {
			_, err = stream.Recv()
		}
		cancel()
		conn.Close()
		if err == nil {
			t.Errorf("a %s client was served", name)
		}
	}
}
