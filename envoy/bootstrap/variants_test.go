package bootstrap

import (
	"bytes"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// generate runs the command as a user would and reads its output back as Envoy would.
func generate(t *testing.T, args ...string) *bootstrapv3.Bootstrap {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Command(args, &stdout, &stderr); code != 0 {
		t.Fatalf("%q: exit %d: %s", args, code, stderr.String())
	}
	b, err := Parse(stdout.Bytes())
	if err != nil {
		t.Fatalf("%q: %v\n%s", args, err, stdout.String())
	}
	if err := Check(b); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return b
}

func TestEveryVariantParsesAndMatchesItsFlags(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		want      Config
		clusterTy cluster.Cluster_DiscoveryType
	}{
		{"defaults", []string{"--node-id", "e1"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:9901"}, cluster.Cluster_STATIC},
		{"compose names, zone", []string{"--node-id", "edge-7", "--group", "edge", "--zone", "us-east-1a", "--xds-address", "dynup.internal:18000"},
			Config{NodeID: "edge-7", Group: "edge", Zone: "us-east-1a", XDSAddress: "dynup.internal:18000", AdminAddress: "127.0.0.1:9901"}, cluster.Cluster_STRICT_DNS},
		{"delta", []string{"--node-id", "e1", "--delta", "--xds-address", "10.0.0.5:18000"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "10.0.0.5:18000", AdminAddress: "127.0.0.1:9901", Delta: true}, cluster.Cluster_STATIC},
		{"IPv6", []string{"--node-id", "e1", "--xds-address", "[fd00::5]:18000", "--admin-address", "[::1]:19901"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "[fd00::5]:18000", AdminAddress: "[::1]:19901"}, cluster.Cluster_STATIC},
		// Values YAML would otherwise turn into booleans or numbers stay strings.
		{"YAML-looking values", []string{"--node-id", "on", "--group", "1e3", "--zone", "null", "--xds-address", "localhost:18000"},
			Config{NodeID: "on", Group: "1e3", Zone: "null", XDSAddress: "localhost:18000", AdminAddress: "127.0.0.1:9901"}, cluster.Cluster_STRICT_DNS},
		{"quotes", []string{"--node-id", `a"b'c\d`}, Config{NodeID: `a"b'c\d`, Group: "envoy", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:9901"}, cluster.Cluster_STATIC},
		// TLS: the certificate dynup must present is named by --xds-tls-sni, else by the host of --xds-address.
		{"TLS to a name", []string{"--node-id", "e1", "--xds-address", "dynup.internal:18000", "--xds-tls-ca", "/etc/envoy/ca.pem"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "dynup.internal:18000", AdminAddress: "127.0.0.1:9901", TLSCA: "/etc/envoy/ca.pem"}, cluster.Cluster_STRICT_DNS},
		{"TLS to an IP address", []string{"--node-id", "e1", "--xds-address", "10.0.0.5:18000", "--xds-tls-ca", "/etc/envoy/ca.pem"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "10.0.0.5:18000", AdminAddress: "127.0.0.1:9901", TLSCA: "/etc/envoy/ca.pem"}, cluster.Cluster_STATIC},
		{"mTLS to a fully qualified name, delta", []string{"--node-id", "e1", "--delta", "--xds-address", "dynup.example.com.:443",
			"--xds-tls-ca", "/tls/ca.pem", "--xds-tls-cert", "/tls/envoy.pem", "--xds-tls-key", "/tls/envoy-key.pem"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "dynup.example.com.:443", AdminAddress: "127.0.0.1:9901", Delta: true,
				TLSCA: "/tls/ca.pem", TLSCert: "/tls/envoy.pem", TLSKey: "/tls/envoy-key.pem"}, cluster.Cluster_STRICT_DNS},
		{"mTLS to an IPv6 address written long", []string{"--node-id", "e1", "--xds-address", "[FD00:0:0::5]:18000",
			"--xds-tls-ca", "/tls/ca.pem", "--xds-tls-cert", "/tls/envoy.pem", "--xds-tls-key", "/tls/envoy.pem"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "[FD00:0:0::5]:18000", AdminAddress: "127.0.0.1:9901",
				TLSCA: "/tls/ca.pem", TLSCert: "/tls/envoy.pem", TLSKey: "/tls/envoy.pem"}, cluster.Cluster_STATIC},
		{"--xds-tls-sni for an IP address", []string{"--node-id", "e1", "--xds-address", "10.0.0.5:18000",
			"--xds-tls-ca", "/tls/ca.pem", "--xds-tls-sni", "dynup.example.internal"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "10.0.0.5:18000", AdminAddress: "127.0.0.1:9901",
				TLSCA: "/tls/ca.pem", TLSSNI: "dynup.example.internal"}, cluster.Cluster_STATIC},
		{"--xds-tls-sni over the name", []string{"--node-id", "e1", "--xds-address", "dynup:18000",
			"--xds-tls-ca", "/tls/ca.pem", "--xds-tls-sni", "xds.example.internal"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "dynup:18000", AdminAddress: "127.0.0.1:9901",
				TLSCA: "/tls/ca.pem", TLSSNI: "xds.example.internal"}, cluster.Cluster_STRICT_DNS},
		// Paths are quoted like every other value: spaces, and names YAML would read as booleans.
		{"TLS paths YAML would misread", []string{"--node-id", "e1", "--xds-tls-ca", "/etc/my certs/ca.pem",
			"--xds-tls-cert", "yes", "--xds-tls-key", "null"},
			Config{NodeID: "e1", Group: "envoy", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:9901",
				TLSCA: "/etc/my certs/ca.pem", TLSCert: "yes", TLSKey: "null"}, cluster.Cluster_STATIC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := generate(t, tc.args...)
			n := b.GetNode()
			if n.GetId() != tc.want.NodeID || n.GetCluster() != tc.want.Group || n.GetLocality().GetZone() != tc.want.Zone {
				t.Errorf("node id=%q cluster=%q zone=%q, want %+v", n.GetId(), n.GetCluster(), n.GetLocality().GetZone(), tc.want)
			}
			if tc.want.Zone == "" && n.GetLocality() != nil {
				t.Errorf("locality %v without --zone", n.GetLocality())
			}
			if k := n.GetMetadata().GetFields()["dynup.kind"].GetStringValue(); k != "envoy" {
				t.Errorf("metadata dynup.kind = %q", k)
			}
			wantType := core.ApiConfigSource_GRPC
			if tc.want.Delta {
				wantType = core.ApiConfigSource_DELTA_GRPC
			}
			if got := b.GetDynamicResources().GetAdsConfig().GetApiType(); got != wantType {
				t.Errorf("ads api_type %v, want %v", got, wantType)
			}
			if got := hostPort(b.GetAdmin().GetAddress()); got != tc.want.AdminAddress {
				t.Errorf("admin %s, want %s", got, tc.want.AdminAddress)
			}
			checkXDSCluster(t, b, tc.want.XDSAddress, tc.clusterTy)
			checkTransportSocket(t, b, tc.want)
		})
	}
}

// checkXDSCluster: one static cluster, named as ADS and LRS name it, HTTP/2 with keepalive, at the address.
func checkXDSCluster(t *testing.T, b *bootstrapv3.Bootstrap, addr string, ty cluster.Cluster_DiscoveryType) {
	t.Helper()
	cs := b.GetStaticResources().GetClusters()
	if len(cs) != 1 || cs[0].GetName() != XDSCluster || cs[0].GetType() != ty {
		t.Fatalf("static clusters %v, want one %s of type %v", cs, XDSCluster, ty)
	}
	c := cs[0]
	ads := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()
	lrs := b.GetClusterManager().GetLoadStatsConfig().GetGrpcServices()
	if len(ads) != 1 || ads[0].GetEnvoyGrpc().GetClusterName() != c.GetName() || len(lrs) != 1 || lrs[0].GetEnvoyGrpc().GetClusterName() != c.GetName() {
		t.Errorf("ADS %v and LRS %v must both name %s", ads, lrs, c.GetName())
	}
	if ads[0].GetEnvoyGrpc().GetRetryPolicy().GetRetryBackOff().GetBaseInterval() == nil {
		t.Error("ADS has no retry back-off")
	}
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		t.Fatalf("endpoints %v, want one", eps)
	}
	if got := hostPort(eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()); got != addr {
		t.Errorf("xDS endpoint %s, want %s", got, addr)
	}
	var opts httpopts.HttpProtocolOptions
	if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&opts); err != nil {
		t.Fatalf("HttpProtocolOptions: %v", err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions().GetConnectionKeepalive().GetInterval() == nil {
		t.Error("no HTTP/2 connection keepalive")
	}
}

// checkTransportSocket: plaintext without --xds-tls-ca; with it, TLS with h2, the files as given, and the
// SNI and the subject alternative name worked out independently of the generator.
func checkTransportSocket(t *testing.T, b *bootstrapv3.Bootstrap, want Config) {
	t.Helper()
	ts := b.GetStaticResources().GetClusters()[0].GetTransportSocket()
	if want.TLSCA == "" {
		if ts != nil {
			t.Errorf("transport socket %v without --xds-tls-ca", ts)
		}
		return
	}
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("transport socket %v, want envoy.transport_sockets.tls", ts)
	}
	var tc tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&tc); err != nil {
		t.Fatalf("UpstreamTlsContext: %v", err)
	}
	common := tc.GetCommonTlsContext()
	if !slices.Equal(common.GetAlpnProtocols(), []string{"h2"}) {
		t.Errorf("ALPN %v, want [h2]", common.GetAlpnProtocols())
	}
	vc := common.GetValidationContext()
	if got := vc.GetTrustedCa().GetFilename(); got != want.TLSCA {
		t.Errorf("trusted_ca %q, want %q", got, want.TLSCA)
	}
	var certs [][2]string
	for _, c := range common.GetTlsCertificates() {
		certs = append(certs, [2]string{c.GetCertificateChain().GetFilename(), c.GetPrivateKey().GetFilename()})
	}
	var wantCerts [][2]string
	if want.TLSCert != "" {
		wantCerts = [][2]string{{want.TLSCert, want.TLSKey}}
	}
	if !slices.Equal(certs, wantCerts) {
		t.Errorf("tls_certificates %v, want %v", certs, wantCerts)
	}

	host, _, _ := net.SplitHostPort(want.XDSAddress)
	wantSNI, wantSAN := want.TLSSNI, "DNS:"+want.TLSSNI
	if want.TLSSNI == "" {
		if ip := net.ParseIP(host); ip != nil {
			wantSNI, wantSAN = "", "IP_ADDRESS:"+ip.String()
		} else {
			wantSNI = strings.TrimSuffix(host, ".")
			wantSAN = "DNS:" + wantSNI
		}
	}
	if tc.GetSni() != wantSNI {
		t.Errorf("sni %q, want %q", tc.GetSni(), wantSNI)
	}
	var sans []string
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		sans = append(sans, m.GetSanType().String()+":"+m.GetMatcher().GetExact())
	}
	if !slices.Equal(sans, []string{wantSAN}) {
		t.Errorf("match_typed_subject_alt_names %v, want [%s]", sans, wantSAN)
	}
}

func hostPort(a *core.Address) string {
	sa := a.GetSocketAddress()
	host := sa.GetAddress()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.FormatUint(uint64(sa.GetPortValue()), 10)
}

// Check must fail on what would make Envoy refuse the file or ignore dynup; these start from a good bootstrap.
func TestCheckRejects(t *testing.T) {
	checkRejects(t, []string{"--node-id", "e1"}, []checkCase{
		{"LRS to another cluster", func(b *bootstrapv3.Bootstrap) {
			b.ClusterManager.LoadStatsConfig.GrpcServices[0].GetEnvoyGrpc().ClusterName = "lrs"
		}, `load_stats_config names cluster "lrs"`},
		{"ADS to a missing cluster", func(b *bootstrapv3.Bootstrap) { b.StaticResources.Clusters[0].Name = "xds" }, `ads_config names cluster "dynup:xds"`},
		{"no node cluster", func(b *bootstrapv3.Bootstrap) { b.Node.Cluster = "" }, "node.cluster"},
		{"CDS not from ADS", func(b *bootstrapv3.Bootstrap) {
			b.DynamicResources.CdsConfig.ConfigSourceSpecifier = &core.ConfigSource_Path{Path: "/etc/cds.yaml"}
		}, "cds_config"},
		{"REST ADS", func(b *bootstrapv3.Bootstrap) { b.DynamicResources.AdsConfig.ApiType = core.ApiConfigSource_REST }, "api_type"},
		{"delta LRS", func(b *bootstrapv3.Bootstrap) {
			b.ClusterManager.LoadStatsConfig.ApiType = core.ApiConfigSource_DELTA_GRPC
		}, "LRS is GRPC only"},
		{"static listener", func(b *bootstrapv3.Bootstrap) {
			b.StaticResources.Listeners = []*listener.Listener{{Name: "l"}}
		}, "static listeners"},
		{"proto constraint", func(b *bootstrapv3.Bootstrap) {
			b.StaticResources.Clusters[0].LoadAssignment.ClusterName = ""
		}, "ClusterName"},
	})
}

// With TLS, Check also fails on what would make dynup refuse Envoy, or Envoy take any certificate of the CA
// for dynup's.
func TestCheckRejectsWeakTLS(t *testing.T) {
	checkRejects(t, []string{"--node-id", "e1", "--xds-tls-ca", "/ca.pem", "--xds-tls-cert", "/e.pem", "--xds-tls-key", "/e-key.pem"}, []checkCase{
		{"no h2", withTLS(func(tc *tlsv3.UpstreamTlsContext) { tc.CommonTlsContext.AlpnProtocols = []string{"http/1.1"} }), "lacks h2"},
		{"no CA", withTLS(func(tc *tlsv3.UpstreamTlsContext) {
			tc.CommonTlsContext.GetValidationContext().TrustedCa = nil
		}), "trusted_ca"},
		{"no name to match", withTLS(func(tc *tlsv3.UpstreamTlsContext) {
			tc.CommonTlsContext.GetValidationContext().MatchTypedSubjectAltNames = nil
		}), "match_typed_subject_alt_names"},
		{"TLS context under another socket's name", func(b *bootstrapv3.Bootstrap) {
			b.StaticResources.Clusters[0].TransportSocket.Name = "envoy.transport_sockets.raw_buffer"
		}, "want envoy.transport_sockets.tls"},
		{"constraint inside the TLS context", withTLS(func(tc *tlsv3.UpstreamTlsContext) { tc.Sni = strings.Repeat("a", 256) }), "Sni"},
	})
}

type checkCase struct {
	name   string
	mutate func(b *bootstrapv3.Bootstrap)
	msg    string
}

// checkRejects prints the bootstrap for args, checks it passes, then that each mutation of it fails Check
// with the case's message.
func checkRejects(t *testing.T, args []string, cases []checkCase) {
	t.Helper()
	var good bytes.Buffer
	Command(args, &good, &bytes.Buffer{})
	if err := checkText(good.Bytes()); err != nil {
		t.Fatalf("the bootstrap the cases start from: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse(good.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(b)
			if err := Check(b); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Check = %v, want an error with %q", err, tc.msg)
			}
		})
	}
}

// withTLS changes the xDS cluster's UpstreamTlsContext.
func withTLS(change func(*tlsv3.UpstreamTlsContext)) func(*bootstrapv3.Bootstrap) {
	return func(b *bootstrapv3.Bootstrap) {
		ts := b.StaticResources.Clusters[0].TransportSocket
		var tc tlsv3.UpstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&tc); err != nil {
			panic(err)
		}
		change(&tc)
		a, err := anypb.New(&tc)
		if err != nil {
			panic(err)
		}
		ts.ConfigType = &core.TransportSocket_TypedConfig{TypedConfig: a}
	}
}

// Parse and Check see into typed_config: an unknown field, an unknown type or a constraint broken inside the
// Any all fail, as they would in Envoy.
func TestTypedConfigIsCheckedToo(t *testing.T) {
	var good bytes.Buffer
	Command([]string{"--node-id", "e1"}, &good, &bytes.Buffer{})
	for _, tc := range []struct{ name, old, new, msg string }{
		{"keepalive without timeout", "              timeout: 5s\n", "", "Timeout"},
		{"unknown type", "upstreams.http.v3.HttpProtocolOptions\n        # xDS", "upstreams.http.v3.NoSuchOptions\n        # xDS", "NoSuchOptions"},
		{"unknown field", "connect_timeout: 1s", "connect_timeout: 1s\n    connect_timout: 1s", "connect_timout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(good.String(), tc.old, tc.new, 1)
			if text == good.String() {
				t.Fatalf("%q is not in the bootstrap", tc.old)
			}
			err := checkText([]byte(text))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an error with %q", err, tc.msg)
			}
		})
	}
}
