package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/test/harness"
)

// A bootstrap printed with the TLS flags reaches a dynup that serves xDS over mTLS (--xds-tls-cert,
// --xds-tls-key, --xds-client-ca), with real certificates and handshakes: ADS, delta ADS and LRS over the
// one cluster, using only the files and names the bootstrap gives. Leaving out the client certificate,
// or naming a server the certificate does not cover, fails the handshake, as it would for Envoy.
func TestMTLSBootstrapReachesDynup(t *testing.T) {
	p := newPKI(t)
	d := harness.StartDynup(t, t.TempDir(), "--xds-tls-cert", p.serverCert, "--xds-tls-key", p.serverKey, "--xds-client-ca", p.ca)
	d.MustDo(t, "POST", "/upstream/imgprocess", `{"servers":[{"host":"10.0.0.1","port":8080,"zone":"zone-a"}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, port, err := net.SplitHostPort(d.XDSAddr)
	if err != nil {
		t.Fatal(err)
	}
	mtls := []string{"--xds-tls-ca", p.ca, "--xds-tls-cert", p.clientCert, "--xds-tls-key", p.clientKey}

	// By IP address: no SNI, the address must be in the certificate.
	b := printFor(t, append([]string{"--node-id", "mtls-ip", "--zone", "zone-a", "--xds-address", d.XDSAddr}, mtls...)...)
	t.Run("ADS by IP address", func(t *testing.T) { checkADS(ctx, t, d, b) })
	t.Run("LRS by IP address", func(t *testing.T) { checkLRS(ctx, t, b) })
	// By name: SNI and the name in the certificate.
	t.Run("delta ADS by name", func(t *testing.T) {
		checkDeltaADS(ctx, t, printFor(t, append([]string{"--node-id", "mtls-name", "--zone", "zone-a", "--delta",
			"--xds-address", net.JoinHostPort("localhost", port)}, mtls...)...))
	})

	for _, tc := range []struct {
		name string
		args []string
		msg  string // in the error, besides Unavailable
	}{
		// dynup asks for a client certificate; without --xds-tls-cert Envoy has none to give, and dynup
		// ends the handshake.
		{"no client certificate", []string{"--xds-tls-ca", p.ca}, ""},
		// dynup's certificate is for 127.0.0.1 and localhost only.
		{"a name the certificate lacks", append([]string{"--xds-tls-sni", "dynup.example.internal"}, mtls...), "matches none of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := printFor(t, append([]string{"--node-id", "refused", "--xds-address", d.XDSAddr}, tc.args...)...)
			err := fetchListeners(ctx, t, b)
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want Unavailable (handshake refused) %s", err, tc.msg)
			}
		})
	}
}

// fetchListeners asks dynup for listeners over b's ADS cluster and returns the error, if any.
func fetchListeners(ctx context.Context, t *testing.T, b *bootstrapv3.Bootstrap) error {
	cc := dialCluster(t, b, b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	defer stream.CloseSend()
	if err := stream.Send(&discovery.DiscoveryRequest{Node: b.GetNode(), TypeUrl: resource.ListenerType}); err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// envoyTLS is the client side of ts as Envoy sets it up: its certificate from tls_certificates, SNI from
// sni, and dynup's certificate verified against trusted_ca and then required to carry one of the subject
// alternative names (Envoy checks these itself; it does not verify the SNI as a host name).
func envoyTLS(t *testing.T, ts *core.TransportSocket) *tls.Config {
	t.Helper()
	var tc tlsv3.UpstreamTlsContext
	if ts.GetName() != "envoy.transport_sockets.tls" || ts.GetTypedConfig().UnmarshalTo(&tc) != nil {
		t.Fatalf("transport socket %v is not Envoy's TLS", ts)
	}
	common := tc.GetCommonTlsContext()
	vc := common.GetValidationContext()
	caPEM, err := os.ReadFile(vc.GetTrustedCa().GetFilename())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("trusted_ca %s has no certificate", vc.GetTrustedCa().GetFilename())
	}
	cfg := &tls.Config{
		ServerName: tc.GetSni(),
		NextProtos: common.GetAlpnProtocols(), // gRPC adds h2 anyway; Check requires it in the file
		MinVersion: tls.VersionTLS12,
		// Verified in VerifyConnection as Envoy does, not by Go's host name rules.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			intermediates := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				intermediates.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates}); err != nil {
				return err
			}
			for _, m := range vc.GetMatchTypedSubjectAltNames() {
				want := m.GetMatcher().GetExact()
				switch m.GetSanType() {
				case tlsv3.SubjectAltNameMatcher_DNS:
					if net.ParseIP(want) == nil && leaf.VerifyHostname(want) == nil {
						return nil
					}
				case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
					if ip := net.ParseIP(want); ip != nil && slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
						return nil
					}
				}
			}
			return fmt.Errorf("dynup's certificate (DNS %v, IP %v) matches none of %v", leaf.DNSNames, leaf.IPAddresses, vc.GetMatchTypedSubjectAltNames())
		},
	}
	for _, c := range common.GetTlsCertificates() {
		pair, err := tls.LoadX509KeyPair(c.GetCertificateChain().GetFilename(), c.GetPrivateKey().GetFilename())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	return cfg
}

// pki is a CA, a certificate for dynup (127.0.0.1 and localhost) and a client certificate for Envoy, as
// PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dynup bootstrap test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP, dns []string) (string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips, DNSNames: dns}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p := pki{ca: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue("dynup", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	p.clientCert, p.clientKey = issue("envoy", 3, x509.ExtKeyUsageClientAuth, nil, nil)
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

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
