package bootstrap

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Command([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if stderr.Len() != 0 {
		t.Errorf("help wrote to stderr: %s", stderr.String())
	}
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "bootstrap.md"))
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := newFlagSet()
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(stdout.String(), "\n  --"+f.Name) {
			t.Errorf("--help does not document --%s:\n%s", f.Name, stdout.String())
		}
		if !strings.Contains(string(docs), "| `--"+f.Name) {
			t.Errorf("docs/bootstrap.md's flag table has no row for --%s", f.Name)
		}
	})
}

func TestBadFlagsExit2WithReason(t *testing.T) {
	base := []string{"--node-id", "e1"}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{}, "--node-id is required"},
		{[]string{"--node-id", ""}, "--node-id is required"},
		{append(base, "--group", ""), "--group is required"},
		{append(base, "--bogus"), "flag provided but not defined: -bogus"},
		{append(base, "extra"), `unexpected argument "extra"`},
		{append(base, "--xds-address", "dynup"), "want host:port"},
		{append(base, "--xds-address", "dynup:0"), `"0" is not a port`},
		{append(base, "--xds-address", "dynup:99999"), `"99999" is not a port`},
		{append(base, "--xds-address", ":18000"), "the host is missing"},
		{append(base, "--xds-address", "bad_name!:18000"), "neither an IP address nor a host name"},
		{append(base, "--admin-address", "localhost:9901"), "is not an IP address"},
		{append(base, "--zone", "zone a"), "--zone"},
		{[]string{"--node-id", "e\n1"}, "--node-id"},
		{append(base, "--delta=maybe"), "invalid boolean value"},
		// TLS flags that would give a half-configured transport socket.
		{append(base, "--xds-tls-ca", "/ca.pem", "--xds-tls-cert", "/e.pem"), "--xds-tls-cert needs --xds-tls-key"},
		{append(base, "--xds-tls-ca", "/ca.pem", "--xds-tls-key", "/e-key.pem"), "--xds-tls-key needs --xds-tls-cert"},
		{append(base, "--xds-tls-cert", "/e.pem", "--xds-tls-key", "/e-key.pem"), "--xds-tls-cert needs --xds-tls-ca"},
		{append(base, "--xds-tls-sni", "dynup.internal"), "--xds-tls-sni needs --xds-tls-ca"},
		{append(base, "--xds-tls-ca", "/ca.pem", "--xds-tls-sni", "10.0.0.5"), "an IP address is not a server name"},
		{append(base, "--xds-tls-ca", "/ca.pem", "--xds-tls-sni", "*.example.com"), `--xds-tls-sni "*.example.com": not a host name`},
		{append(base, "--xds-tls-ca", "/ca\n.pem"), "--xds-tls-ca"},
	} {
		var stdout, stderr bytes.Buffer
		code := Command(tc.args, &stdout, &stderr)
		if code != 2 || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing printed", tc.args, code, stdout.String())
		}
		if !strings.Contains(stderr.String(), tc.msg) || !strings.Contains(stderr.String(), "dynup bootstrap --help") {
			t.Errorf("%q: stderr %q, want %q and the --help hint", tc.args, stderr.String(), tc.msg)
		}
	}
}

func TestNonLoopbackAdminWarns(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Command([]string{"--node-id", "e1", "--admin-address", "0.0.0.0:9901"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: --admin-address 0.0.0.0:9901") {
		t.Errorf("no warning: %q", stderr.String())
	}
	stderr.Reset()
	Command([]string{"--node-id", "e1"}, &stdout, &stderr)
	if stderr.Len() != 0 {
		t.Errorf("default admin address warned: %q", stderr.String())
	}
}

// A relative path works only if Envoy starts in the right directory: say so, and print the file anyway.
func TestRelativeTLSPathsWarn(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--node-id", "e1", "--xds-tls-ca", "tls/ca.pem", "--xds-tls-cert", "/tls/e.pem", "--xds-tls-key", "e-key.pem"}
	if code := Command(args, &stdout, &stderr); code != 0 || stdout.Len() == 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"warning: --xds-tls-ca tls/ca.pem is a relative path", "warning: --xds-tls-key e-key.pem is a relative path"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", stderr.String(), want)
		}
	}
	if strings.Contains(stderr.String(), "--xds-tls-cert") {
		t.Errorf("an absolute path warned: %q", stderr.String())
	}
}
