package bootstrap

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
)

// Command is `dynup bootstrap`: it prints a bootstrap for one Envoy on stdout. It returns the exit status:
// 0; 2 for bad flags, with the reason on stderr; 1 if the bootstrap it produced fails Check (a bug in this
// package, caught before an Envoy sees it).
func Command(args []string, stdout, stderr io.Writer) int {
	fs, c := newFlagSet()
	fs.SetOutput(stderr) // where the flag package reports "flag provided but not defined: -x"
	fs.Usage = func() {} // help goes to stdout, below; errors get a one-line hint instead
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs)
		return 0
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0))
		fmt.Fprintln(stderr, err)
	}
	if err == nil {
		if err = c.Validate(); err != nil {
			fmt.Fprintln(stderr, err)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "Run 'dynup bootstrap --help' for the flags.")
		return 2
	}
	out, err := Render(*c)
	if err == nil {
		err = checkText(out)
	}
	if err != nil {
		fmt.Fprintln(stderr, "dynup bootstrap: generated an invalid bootstrap:", err)
		return 1
	}
	if host, _, _ := net.SplitHostPort(c.AdminAddress); !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(stderr, "warning: --admin-address %s: Envoy's admin API has no authentication and is reachable from other hosts\n", c.AdminAddress)
	}
	for _, f := range []struct{ flag, path string }{{"--xds-tls-ca", c.TLSCA}, {"--xds-tls-cert", c.TLSCert}, {"--xds-tls-key", c.TLSKey}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			fmt.Fprintf(stderr, "warning: %s %s is a relative path: Envoy reads it from the directory it is started in\n", f.flag, f.path)
		}
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintln(stderr, "dynup bootstrap:", err)
		return 1
	}
	return 0
}

func checkText(yamlText []byte) error {
	b, err := Parse(yamlText)
	if err != nil {
		return err
	}
	return Check(b)
}

func newFlagSet() (*flag.FlagSet, *Config) {
	c := &Config{}
	fs := flag.NewFlagSet("dynup bootstrap", flag.ContinueOnError)
	fs.StringVar(&c.NodeID, "node-id", "", "node.id, unique per Envoy (required); dynup's GET /nodes lists nodes by it")
	fs.StringVar(&c.Group, "group", DefaultGroup, "node.cluster: Envoy's service cluster, which Envoy requires for ADS; shown in GET /nodes")
	fs.StringVar(&c.Zone, "zone", "", "node.locality.zone: dynup sends this zone's servers first, other zones' as failover (default: no zone)")
	fs.StringVar(&c.XDSAddress, "xds-address", DefaultXDSAddress, "`host:port` of dynup's xDS (ADS and LRS) listener: an IP address, or a name resolved by DNS")
	fs.StringVar(&c.AdminAddress, "admin-address", DefaultAdminAddress, "`ip:port` of Envoy's admin API; it has no authentication, so keep it on loopback")
	fs.BoolVar(&c.Delta, "delta", false, "use incremental (delta) xDS for ADS (api_type DELTA_GRPC): dynup then sends only the resources that changed")
	fs.StringVar(&c.TLSCA, "xds-tls-ca", "", "`file` (PEM) with the CA that signed dynup's --xds-tls-cert: connect to dynup over TLS and verify it (default: plaintext)")
	fs.StringVar(&c.TLSSNI, "xds-tls-sni", "", "`name` sent as SNI and required in dynup's certificate (default: the host of --xds-address if it is a name; for an IP address, that address is required, with no SNI)")
	fs.StringVar(&c.TLSCert, "xds-tls-cert", "", "`file` (PEM) with Envoy's client certificate (chain), for a dynup with --xds-client-ca (mTLS); needs --xds-tls-key and --xds-tls-ca")
	fs.StringVar(&c.TLSKey, "xds-tls-key", "", "`file` (PEM) with the private key of --xds-tls-cert")
	return fs, c
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: dynup bootstrap --node-id ID [flags] > envoy.yaml

Prints an Envoy bootstrap (YAML) that gets listeners, routes, clusters and endpoints from dynup over ADS
and reports load to dynup (LRS). Run Envoy with: envoy -c envoy.yaml

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "\n      %s", strings.ReplaceAll(usage, "\n", "\n      "))
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
