package luafilters

import (
	lua "github.com/yuin/gopher-lua"
)

// Canned connection facts. The addresses come from the documentation ranges (RFC 5737) so that
// nobody mistakes them for real peers.
const (
	sampleLocalAddress  = "192.0.2.1:10000"
	sampleRemoteAddress = "198.51.100.7:51234"
	sampleProtocol      = "HTTP/1.1"
)

// streamState holds what both entry points of one stream share.
type streamState struct {
	tls bool
	// host is the :authority without port, used as SNI and as the local certificate's name.
	host string
	// dynMeta is the stream's dynamic metadata: filter name -> key -> value. Values are kept as
	// Go data (as Envoy keeps a protobuf Struct), so set() copies and get() returns a new table.
	dynMeta map[string]map[string]any
	// metaIterating is set during a pairs() loop over the dynamic metadata.
	metaIterating bool
}

func constString(v string) method {
	return func(s *sandbox, o *object) int { s.L.Push(lua.LString(v)); return 1 }
}

func constNil(argName string) method {
	return func(s *sandbox, o *object) int {
		if argName != "" {
			s.argString(argName, 1)
		}
		return 0
	}
}

// streamInfoClass is Envoy's stream info object API.
var streamInfoClass = newClass("streamInfo", map[string]method{
	"protocol":                      constString(sampleProtocol),
	"routeName":                     constString(""),
	"virtualClusterName":            constString(""),
	"downstreamLocalAddress":        constString(sampleLocalAddress),
	"downstreamDirectLocalAddress":  constString(sampleLocalAddress),
	"downstreamRemoteAddress":       constString(sampleRemoteAddress),
	"downstreamDirectRemoteAddress": constString(sampleRemoteAddress),
	"requestedServerName":           streamInfoSNI,
	"dynamicMetadata":               streamInfoDynamicMetadata,
	"dynamicTypedMetadata":          constNil("dynamicTypedMetadata"),
	"filterState":                   streamInfoFilterState,
	"downstreamSslConnection":       connectionSSL,
}, map[string]*class{
	"dynamicMetadata":         dynamicMetadataClass,
	"filterState":             filterStateClass,
	"downstreamSslConnection": sslClass,
})

func streamInfoSNI(s *sandbox, o *object) int {
	if s.stream.tls {
		s.L.Push(lua.LString(s.stream.host))
	} else {
		s.L.Push(lua.LString(""))
	}
	return 1
}

func streamInfoDynamicMetadata(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(s.flow, "dynamicMetadata", dynamicMetadataClass, nil))
	return 1
}

func streamInfoFilterState(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(s.flow, "filterState", filterStateClass, nil))
	return 1
}

// filterStateClass: dry runs have no other filters, so no filter state objects exist.
var filterStateClass = newClass("filterState", map[string]method{
	"get": constNil("get"),
}, nil)

// connectionClass is Envoy's connection object API.
var connectionClass = newClass("connection", map[string]method{
	"ssl": connectionSSL,
}, map[string]*class{"ssl": sslClass})

// connectionSSL returns the SSL object on a TLS sample and nil on a plaintext one.
func connectionSSL(s *sandbox, o *object) int {
	if !s.stream.tls {
		return 0
	}
	s.L.Push(s.cachedObject(s.flow, "ssl", sslClass, nil))
	return 1
}

// connStreamInfoClass is Envoy's connection-level stream info object API.
var connStreamInfoClass = newClass("connectionStreamInfo", map[string]method{
	"dynamicMetadata":      connStreamInfoDynamicMetadata,
	"dynamicTypedMetadata": constNil("dynamicTypedMetadata"),
}, map[string]*class{"dynamicMetadata": connDynamicMetadataClass})

func connStreamInfoDynamicMetadata(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(s.flow, "connectionDynamicMetadata", connDynamicMetadataClass, nil))
	return 1
}

// connDynamicMetadataClass is read-only in Envoy (no set()); dry runs have no listener filters
// that could have filled it, so it is empty.
var connDynamicMetadataClass = func() *class {
	c := newClass("dynamicMetadata", map[string]method{"get": constNil("get")}, nil)
	c.pairs = emptyPairs
	return c
}()

// routeMetadataClass is handle:metadata(), the route's filter metadata; dry runs have no route.
var routeMetadataClass = func() *class {
	c := newClass("metadata", map[string]method{"get": constNil("get")}, nil)
	c.pairs = emptyPairs
	return c
}()

func emptyPairs(s *sandbox, o *object) int {
	s.L.Push(s.L.NewFunction(func(L *lua.LState) int { return 0 }))
	return 1
}

// sslClass is Envoy's SSL connection object API. The sample is TLS without a client
// certificate, so peer facts are empty, as Envoy reports them in that case.
var sslClass = func() *class {
	emptyList := func(s *sandbox, o *object) int { s.L.Push(s.L.NewTable()); return 1 }
	zero := func(s *sandbox, o *object) int { s.L.Push(lua.LNumber(0)); return 1 }
	no := func(s *sandbox, o *object) int { s.L.Push(lua.LFalse); return 1 }
	return newClass("ssl", map[string]method{
		"peerCertificatePresented":                 no,
		"peerCertificateValidated":                 no,
		"uriSanLocalCertificate":                   emptyList,
		"uriSanPeerCertificate":                    emptyList,
		"dnsSansPeerCertificate":                   emptyList,
		"dnsSansLocalCertificate":                  sslLocalDNSSans,
		"oidsPeerCertificate":                      emptyList,
		"oidsLocalCertificate":                     emptyList,
		"sha256PeerCertificateDigest":              constString(""),
		"serialNumberPeerCertificate":              constString(""),
		"issuerPeerCertificate":                    constString(""),
		"subjectPeerCertificate":                   constString(""),
		"subjectLocalCertificate":                  sslLocalSubject,
		"parsedSubjectPeerCertificate":             constNil(""),
		"urlEncodedPemEncodedPeerCertificate":      constString(""),
		"urlEncodedPemEncodedPeerCertificateChain": constString(""),
		"validFromPeerCertificate":                 zero,
		"expirationPeerCertificate":                zero,
		"sessionId":                                constString(""),
		"ciphersuiteId":                            constString("0x1301"),
		"ciphersuiteString":                        constString("TLS_AES_128_GCM_SHA256"),
		"tlsVersion":                               constString("TLSv1.3"),
	}, map[string]*class{"parsedSubjectPeerCertificate": parsedNameClass})
}()

func sslLocalDNSSans(s *sandbox, o *object) int {
	t := s.L.NewTable()
	t.Append(lua.LString(s.stream.host))
	s.L.Push(t)
	return 1
}

func sslLocalSubject(s *sandbox, o *object) int {
	s.L.Push(lua.LString("CN=" + s.stream.host))
	return 1
}

// parsedNameClass is never handed out (no peer certificate in samples) but is declared so the
// static check knows its methods.
var parsedNameClass = newClass("parsedSubject", map[string]method{
	"commonName":       constString(""),
	"organizationName": func(s *sandbox, o *object) int { s.L.Push(s.L.NewTable()); return 1 },
}, nil)
