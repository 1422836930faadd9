package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/adminapi"
)

// securityFlags are the admin API's authentication and TLS, and the xDS server's TLS and limits.
// docs/security.md explains each one and the threat model behind the defaults.
type securityFlags struct {
	adminToken, adminTokenFile string
	adminOpenReads             bool
	adminNoTokenOffLoopback    bool
	adminTLSCert, adminTLSKey  string
	adminMaxConns              int

	xdsTLSCert, xdsTLSKey, xdsClientCA string
	xdsMaxRecvBytes                    int
	xdsMaxStreams                      int
	xdsMaxStreamsPerConn               uint

	tokens []adminapi.Token // loaded by check
}

// minTokenBytes keeps out tokens short enough to guess: `openssl rand -hex 16` gives 32 characters.
const minTokenBytes = 16

// Admin server timeouts against slow clients. A write with ?wait= extends its own write deadline
// (adminapi.Limit), so WriteTimeout need not cover a rollout wait.
const (
	adminReadHeaderTimeout = 10 * time.Second
	adminReadTimeout       = 30 * time.Second
	adminWriteTimeout      = 60 * time.Second
	adminIdleTimeout       = 2 * time.Minute
	adminMaxHeaderBytes    = 64 << 10
)

func (f *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.adminToken, "admin-token", os.Getenv("DYNUP_ADMIN_TOKEN"),
		"bearer token the admin API requires (default $DYNUP_ADMIN_TOKEN); a flag shows in ps, so prefer the file or the variable")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "",
		"file of admin tokens, one per line: TOKEN or NAME TOKEN (NAME identifies the caller in the audit log; # comments)")
	fs.BoolVar(&f.adminNoTokenOffLoopback, "admin-insecure-no-token", false,
		"serve the admin API off loopback without a token; only for a private network that nobody else reaches "+
			"(the demo's compose network, whose port is published on the host's 127.0.0.1)")
	fs.BoolVar(&f.adminOpenReads, "admin-open-reads", false,
		"with a token set, let GET and HEAD through without it (the Lua endpoints still need it)")
	fs.StringVar(&f.adminTLSCert, "admin-tls-cert", "", "PEM certificate (chain) for HTTPS on the admin API; re-read when it changes")
	fs.StringVar(&f.adminTLSKey, "admin-tls-key", "", "PEM private key for --admin-tls-cert")
	fs.IntVar(&f.adminMaxConns, "admin-max-conns", 1024, "admin connections served at once; more wait to be accepted")
	fs.StringVar(&f.xdsTLSCert, "xds-tls-cert", "", "PEM certificate (chain) for TLS on the xDS port; re-read when it changes")
	fs.StringVar(&f.xdsTLSKey, "xds-tls-key", "", "PEM private key for --xds-tls-cert")
	fs.StringVar(&f.xdsClientCA, "xds-client-ca", "",
		"PEM CA bundle; when set, every xDS client must present a certificate it signed (mTLS); needs --xds-tls-cert")
	fs.IntVar(&f.xdsMaxRecvBytes, "xds-max-recv-bytes", 4<<20, "largest gRPC message accepted from a node")
	fs.IntVar(&f.xdsMaxStreams, "xds-max-streams", 50000,
		"xDS streams served at once; more are refused with RESOURCE_EXHAUSTED and retried by the node (0: no limit)")
	fs.UintVar(&f.xdsMaxStreamsPerConn, "xds-max-streams-per-conn", 0,
		"concurrent streams on one xDS connection (HTTP/2 MAX_CONCURRENT_STREAMS; 0: dynup's default, 65536)")
}

// check validates the flags, loads the admin tokens, and refuses an admin API reachable from other
// hosts without a token: it takes Lua code that every Envoy runs.
func (f *securityFlags) check(adminAddr string) error {
	if (f.adminTLSCert == "") != (f.adminTLSKey == "") {
		return errors.New("--admin-tls-cert and --admin-tls-key go together")
	}
	if (f.xdsTLSCert == "") != (f.xdsTLSKey == "") {
		return errors.New("--xds-tls-cert and --xds-tls-key go together")
	}
	if f.xdsClientCA != "" && f.xdsTLSCert == "" {
		return errors.New("--xds-client-ca needs --xds-tls-cert and --xds-tls-key: client certificates are only asked for over TLS")
	}
	if f.xdsMaxRecvBytes < 64<<10 {
		return fmt.Errorf("--xds-max-recv-bytes %d is below 64 KiB; an Envoy's first request alone can be larger", f.xdsMaxRecvBytes)
	}
	if f.xdsMaxStreams < 0 || f.adminMaxConns < 1 {
		return errors.New("--xds-max-streams must not be negative, --admin-max-conns must be positive")
	}
	tokens, err := loadTokens(f.adminToken, f.adminTokenFile)
	if err != nil {
		return err
	}
	f.tokens = tokens
	if len(tokens) == 0 && !loopbackAddr(adminAddr) && !f.adminNoTokenOffLoopback {
		return fmt.Errorf("refusing to serve the admin API on %s without a token: anyone who reaches it can change "+
			"every upstream and run Lua in every Envoy; set --admin-token-file (or $DYNUP_ADMIN_TOKEN), "+
			"or bind it to 127.0.0.1", adminAddr)
	}
	return nil
}

// loadTokens reads the flag's token and the file's, each checked for length and naming.
func loadTokens(flagToken, file string) ([]adminapi.Token, error) {
	var out []adminapi.Token
	if flagToken != "" {
		if err := checkToken(flagToken); err != nil {
			return nil, fmt.Errorf("--admin-token: %w", err)
		}
		out = append(out, adminapi.Token{ID: "admin-token", Secret: flagToken})
	}
	if file == "" {
		return out, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	ids := map[string]bool{"admin-token": true}
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		tok := adminapi.Token{ID: fmt.Sprintf("line-%d", line), Secret: fields[0]}
		switch len(fields) {
		case 1:
		case 2:
			tok.ID, tok.Secret = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("--admin-token-file %s line %d: want TOKEN or NAME TOKEN", file, line)
		}
		if err := checkToken(tok.Secret); err != nil {
			return nil, fmt.Errorf("--admin-token-file %s line %d: %w", file, line, err)
		}
		if ids[tok.ID] {
			return nil, fmt.Errorf("--admin-token-file %s line %d: the name %q is used twice", file, line, tok.ID)
		}
		ids[tok.ID] = true
		out = append(out, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--admin-token-file %s: %w", file, err)
	}
	if len(out) == 0 {
		// An empty file is a mistake (an unmounted secret), not a wish to run without authentication.
		return nil, fmt.Errorf("--admin-token-file %s holds no token", file)
	}
	return out, nil
}

func checkToken(tok string) error {
	if len(tok) < minTokenBytes {
		return fmt.Errorf("a token needs at least %d characters (e.g. openssl rand -hex 32)", minTokenBytes)
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("a token must not contain spaces or control characters")
	}
	return nil
}

// loopbackAddr reports whether host:port binds only this machine's loopback interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminAuth is the admin API's authentication as the flags set it.
func (f *securityFlags) adminAuth(audit *slog.Logger) adminapi.AuthConfig {
	return adminapi.AuthConfig{Tokens: f.tokens, OpenReads: f.adminOpenReads, LoopbackHostOnly: len(f.tokens) == 0, Audit: audit}
}

// adminTLS returns the admin API's TLS configuration, or nil without --admin-tls-cert.
func (f *securityFlags) adminTLS(log *slog.Logger) (*tls.Config, error) {
	if f.adminTLSCert == "" {
		return nil, nil
	}
	files, err := newTLSFiles(f.adminTLSCert, f.adminTLSKey, "", log)
	if err != nil {
		return nil, fmt.Errorf("admin TLS: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, _ := files.current()
			return cert, nil
		},
	}, nil
}

// newAdminServer is the admin HTTP server with its slow-client timeouts; tlsConfig may be nil.
func newAdminServer(h http.Handler, tlsConfig *tls.Config) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
	}
}

// serveAdmin serves the admin API on lis, over TLS when the server has a TLS configuration, with at most
// --admin-max-conns connections at once.
func (f *securityFlags) serveAdmin(srv *http.Server, lis net.Listener) error {
	lis = netutil.LimitListener(lis, f.adminMaxConns)
	if srv.TLSConfig != nil {
		return srv.ServeTLS(lis, "", "")
	}
	return srv.Serve(lis)
}

// xdsServerOptions are the gRPC options for the xDS server: TLS (and client certificates) when set,
// the message size limit, and the stream limits. They go after serve.NewGRPCServer's own options and
// win over them.
func (f *securityFlags) xdsServerOptions(log *slog.Logger) ([]grpc.ServerOption, error) {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(f.xdsMaxRecvBytes)}
	if f.xdsMaxStreamsPerConn > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(min(f.xdsMaxStreamsPerConn, 1<<31))))
	}
	if f.xdsMaxStreams > 0 {
		opts = append(opts, grpc.ChainStreamInterceptor(streamLimit(f.xdsMaxStreams)))
	}
	if f.xdsTLSCert == "" {
		return opts, nil
	}
	files, err := newTLSFiles(f.xdsTLSCert, f.xdsTLSKey, f.xdsClientCA, log)
	if err != nil {
		return nil, fmt.Errorf("xDS TLS: %w", err)
	}
	perConn := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := files.current()
		c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}, Certificates: []tls.Certificate{*cert}}
		if pool != nil {
			c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: perConn})
	return append(opts, grpc.Creds(creds)), nil
}

// streamLimit refuses streams beyond max at once. A node refused with RESOURCE_EXHAUSTED retries with
// back-off; without a limit, a flood of streams would take memory from the nodes already served.
func streamLimit(max int) grpc.StreamServerInterceptor {
	var active atomic.Int64
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if active.Add(1) > int64(max) {
			active.Add(-1)
			return status.Errorf(codes.ResourceExhausted, "dynup serves at most %d xDS streams (--xds-max-streams); retry later", max)
		}
		defer active.Add(-1)
		return handler(srv, ss)
	}
}

// tlsFiles are a certificate, its key and optionally a client CA bundle, read again when any of them
// changes, so certificates rotate without a restart. A change that does not load (a half-written file)
// keeps the last good files and logs why.
type tlsFiles struct {
	cert, key, ca string
	log           *slog.Logger

	mu    sync.Mutex
	stamp string
	pair  *tls.Certificate
	pool  *x509.CertPool
}

func newTLSFiles(cert, key, ca string, log *slog.Logger) (*tlsFiles, error) {
	t := &tlsFiles{cert: cert, key: key, ca: ca, log: log}
	stamp, err := t.fileStamp()
	if err != nil {
		return nil, err
	}
	if err := t.load(stamp); err != nil {
		return nil, err
	}
	return t, nil
}

// current returns the certificate and the client CAs (nil without a CA file), reloading changed files.
func (t *tlsFiles) current() (*tls.Certificate, *x509.CertPool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if stamp, err := t.fileStamp(); err == nil && stamp != t.stamp {
		if err := t.load(stamp); err != nil && t.log != nil {
			t.log.Warn("TLS files changed but do not load; still using the previous ones", "cert", t.cert, "err", err)
		}
	}
	return t.pair, t.pool
}

// fileStamp identifies the files' current contents by modification time and size.
func (t *tlsFiles) fileStamp() (string, error) {
	var b strings.Builder
	for _, p := range []string{t.cert, t.key, t.ca} {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return b.String(), nil
}

func (t *tlsFiles) load(stamp string) error {
	pair, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return err
	}
	var pool *x509.CertPool
	if t.ca != "" {
		pem, err := os.ReadFile(t.ca)
		if err != nil {
			return err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", t.ca)
		}
	}
	t.stamp, t.pair, t.pool = stamp, &pair, pool
	return nil
}
