package bootstrap

import (
	_ "embed"
	"net"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

//go:embed bootstrap.yaml.tmpl
var templateText string

// The template quotes every value that came from a user, so a zone named "on" or "1e3" stays a string.
var bootstrapTemplate = template.Must(template.New("bootstrap").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(templateText))

// templateData is Config resolved into what the YAML needs.
type templateData struct {
	Config
	Command            string
	Cluster            string
	XDSHost, AdminHost string
	XDSPort, AdminPort int
	Resolve            bool // the xDS host is a name: a DNS cluster instead of a static one
	TLS                bool // a TLS transport socket on the xDS cluster (--xds-tls-ca)
	SNI                string
	SANType, SAN       string // the subject alternative name dynup's certificate must have
}

// Render returns the bootstrap YAML for c, or c's first invalid setting.
func Render(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := templateData{Config: c, Command: commandLine(c.Args()), Cluster: XDSCluster}
	d.XDSHost, d.XDSPort, _ = xdsEndpoint(c.XDSAddress)
	d.AdminHost, d.AdminPort, _ = splitPort(c.AdminAddress)
	d.Resolve = net.ParseIP(d.XDSHost) == nil
	if c.TLSCA != "" {
		d.TLS = true
		d.SNI, d.SANType, d.SAN = c.serverIdentity()
	}
	var b strings.Builder
	if err := bootstrapTemplate.Execute(&b, d); err != nil {
		return nil, err // only a broken template gets here, and the tests render it
	}
	return []byte(b.String()), nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._:/@=+,\[\]-]+$`)

// commandLine is args as one could paste them into a shell.
func commandLine(args []string) string {
	parts := []string{"dynup", "bootstrap"}
	for _, a := range args {
		if !shellSafe.MatchString(a) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
