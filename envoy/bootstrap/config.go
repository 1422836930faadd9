// Package bootstrap writes the Envoy bootstrap that points an Envoy at dynup: the node's identity, one
// static cluster for dynup, and everything else (listeners, routes, clusters, endpoints) over ADS.
//
// The same generator backs `dynup bootstrap` and the checked-in files in envoy/, whose golden test keeps
// them from drifting. Parse and Check read a bootstrap back into Envoy's own proto, so a file that Envoy
// would refuse fails here first.
package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// XDSCluster is the name of the static cluster for dynup. ADS and load reporting both name it. The colon
// keeps it out of the names dynup serves: every upstream becomes a CDS cluster of its own name, upstream
// names cannot hold a colon (registry.ValidateName), and Envoy refuses a CDS update that would redefine a
// static cluster. Envoy's stats show it as dynup_xds (':' becomes '_' in stat names).
const XDSCluster = "dynup:xds"

// Defaults shared by the flags and the docs.
const (
	DefaultXDSAddress   = "127.0.0.1:18000" // dynup's own --xds-addr default
	DefaultAdminAddress = "127.0.0.1:9901"  // Envoy's usual admin port, on loopback
	DefaultGroup        = "envoy"
)

// Config is what differs between two Envoys: who they are, where dynup is, where their admin listens.
type Config struct {
	NodeID       string // node.id: unique per Envoy; dynup's GET /nodes lists nodes by it
	Group        string // node.cluster: Envoy's service cluster, required by Envoy for ADS
	Zone         string // node.locality.zone: dynup sends this zone's servers first; empty for none
	XDSAddress   string // host:port of dynup's xDS listener; a host name is resolved by DNS
	AdminAddress string // ip:port of Envoy's admin listener
	Delta        bool   // DELTA_GRPC instead of GRPC for ADS: incremental xDS, only changed resources sent

	// TLS to dynup's xDS port, matching dynup's --xds-tls-cert/--xds-tls-key (and --xds-client-ca for the
	// client certificate). The paths are where Envoy will read the files; they are not read here, since a
	// bootstrap is often written on another machine than the Envoy's, or for a container.
	TLSCA   string // PEM bundle of the CA that signed dynup's xDS certificate; set, it turns TLS on
	TLSSNI  string // name sent as SNI and required in dynup's certificate; empty: --xds-address's host, if a name
	TLSCert string // Envoy's client certificate (chain) for dynup's --xds-client-ca; goes with TLSKey
	TLSKey  string // the private key of TLSCert
}

// Args are the `dynup bootstrap` flags that produce c; every generated file records them in its header.
func (c Config) Args() []string {
	args := []string{"--node-id", c.NodeID, "--group", c.Group}
	if c.Zone != "" {
		args = append(args, "--zone", c.Zone)
	}
	args = append(args, "--xds-address", c.XDSAddress)
	if c.AdminAddress != DefaultAdminAddress {
		args = append(args, "--admin-address", c.AdminAddress)
	}
	if c.Delta {
		args = append(args, "--delta")
	}
	for _, f := range []struct{ flag, value string }{
		{"--xds-tls-ca", c.TLSCA}, {"--xds-tls-sni", c.TLSSNI}, {"--xds-tls-cert", c.TLSCert}, {"--xds-tls-key", c.TLSKey},
	} {
		if f.value != "" {
			args = append(args, f.flag, f.value)
		}
	}
	return args
}

// dnsName is a host name as DNS allows it (letters, digits, hyphens, dots; labels not starting or ending
// with a hyphen). Docker service names such as "dynup" qualify.
var dnsName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

// Validate reports the first setting Envoy would refuse or that would make a confusing bootstrap, naming the
// flag so that the command's message tells the user what to change.
func (c Config) Validate() error {
	for _, f := range []struct{ flag, value string }{{"--node-id", c.NodeID}, {"--group", c.Group}, {"--zone", c.Zone}} {
		if f.value == "" && f.flag != "--zone" {
			return fmt.Errorf("%s is required", f.flag)
		}
		if err := printable(f.value); err != nil {
			return fmt.Errorf("%s %q: %w", f.flag, f.value, err)
		}
	}
	if _, _, err := xdsEndpoint(c.XDSAddress); err != nil {
		return fmt.Errorf("--xds-address %q: %w", c.XDSAddress, err)
	}
	host, _, err := splitPort(c.AdminAddress)
	if err != nil {
		return fmt.Errorf("--admin-address %q: %w", c.AdminAddress, err)
	}
	if net.ParseIP(host) == nil {
		// Envoy binds its admin listener to a socket address and never resolves names there.
		return fmt.Errorf("--admin-address %q: %q is not an IP address", c.AdminAddress, host)
	}
	return c.validateTLS()
}

// validateTLS refuses TLS flags that would give a half-configured transport socket: a certificate without
// its key, a client certificate or a server name without TLS.
func (c Config) validateTLS() error {
	for _, f := range []struct{ flag, value string }{
		{"--xds-tls-ca", c.TLSCA}, {"--xds-tls-cert", c.TLSCert}, {"--xds-tls-key", c.TLSKey},
	} {
		if err := filePath(f.value); err != nil {
			return fmt.Errorf("%s %q: %w", f.flag, f.value, err)
		}
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return errors.New("--xds-tls-cert needs --xds-tls-key, the private key of Envoy's client certificate")
	case c.TLSKey != "" && c.TLSCert == "":
		return errors.New("--xds-tls-key needs --xds-tls-cert, the client certificate it is the key of")
	case c.TLSCert != "" && c.TLSCA == "":
		return errors.New("--xds-tls-cert needs --xds-tls-ca: Envoy presents a client certificate only over TLS, " +
			"which --xds-tls-ca (the CA that signed dynup's --xds-tls-cert) turns on")
	case c.TLSSNI != "" && c.TLSCA == "":
		return errors.New("--xds-tls-sni needs --xds-tls-ca: a server name is only sent and checked over TLS, " +
			"which --xds-tls-ca (the CA that signed dynup's --xds-tls-cert) turns on")
	}
	if c.TLSSNI == "" {
		return nil
	}
	if net.ParseIP(c.TLSSNI) != nil {
		return fmt.Errorf("--xds-tls-sni %q: an IP address is not a server name; leave --xds-tls-sni out to check "+
			"the IP address of --xds-address in dynup's certificate", c.TLSSNI)
	}
	if !dnsName.MatchString(c.TLSSNI) || len(c.TLSSNI) > 253 {
		return fmt.Errorf("--xds-tls-sni %q: not a host name (a DNS name in dynup's certificate, such as dynup.example.internal)", c.TLSSNI)
	}
	return nil
}

// filePath refuses characters that cannot be in a path Envoy is given in YAML, or only by accident.
func filePath(s string) error {
	if len(s) > 4096 {
		return errors.New("longer than 4096 characters")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("has the character %q", r)
		}
	}
	return nil
}

// serverIdentity is what Envoy sends as SNI (empty: none) and the subject alternative name it requires in
// dynup's certificate: --xds-tls-sni, else the host of --xds-address; an IP address is never sent as SNI
// (RFC 6066) and is matched as an IP address SAN.
func (c Config) serverIdentity() (sni, sanType, san string) {
	name := c.TLSSNI
	if name == "" {
		host, _, _ := xdsEndpoint(c.XDSAddress)
		if ip := net.ParseIP(host); ip != nil {
			return "", "IP_ADDRESS", ip.String()
		}
		name = host
	}
	// A fully qualified "dynup.internal." resolves like "dynup.internal", but certificates and SNI never
	// carry the final dot.
	name = strings.TrimSuffix(name, ".")
	return name, "DNS", name
}

// printable rejects characters that have no business in an identifier and would only surprise later
// (in logs, in dynup's API answers, in YAML).
func printable(s string) error {
	if len(s) > 256 {
		return errors.New("longer than 256 characters")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("has the character %q; use letters, digits and punctuation", r)
		}
	}
	return nil
}

// xdsEndpoint splits dynup's address into a host and port and says whether the host must be resolved.
func xdsEndpoint(addr string) (host string, port int, err error) {
	host, port, err = splitPort(addr)
	if err != nil {
		return "", 0, err
	}
	if net.ParseIP(host) == nil && !dnsName.MatchString(host) {
		return "", 0, fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return host, port, nil
}

func splitPort(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("want host:port (an IPv6 address in brackets: [::1]:18000)")
	}
	if host == "" {
		return "", 0, errors.New("the host is missing")
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q is not a port (1-65535)", p)
	}
	return host, port, nil
}
