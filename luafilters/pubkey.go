package luafilters

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// publicKeyClass is what importPublicKey() returns; get() yields the key to pass to
// verifySignature(), or nil when the DER bytes were not a public key.
var publicKeyClass = newClass("publicKey", map[string]method{
	"get": publicKeyGet,
}, nil)

func publicKeyGet(s *sandbox, o *object) int {
	der := o.val.(string)
	if der == "" {
		s.L.Push(lua.LNil)
	} else {
		s.L.Push(lua.LString(der))
	}
	return 1
}

// handleImportPublicKey parses a DER (PKIX) public key like Envoy does; invalid input yields an
// object whose get() returns nil, not an error.
func handleImportPublicKey(s *sandbox, o *object) int {
	der := s.argString("importPublicKey", 1)
	n := s.argInt("importPublicKey", 2)
	if n < 0 || n > int64(len(der)) {
		s.apiErrorf("importPublicKey(): keyderLength %d does not fit the %d-byte key", n, len(der))
	}
	der = der[:n]
	key, err := x509.ParsePKIXPublicKey([]byte(der))
	if err != nil {
		der = ""
	} else {
		s.keys[der] = key
	}
	s.L.Push(s.newObject(publicKeyClass, "", der))
	return 1
}

var signatureHashes = map[string]crypto.Hash{
	"SHA1": crypto.SHA1, "SHA224": crypto.SHA224, "SHA256": crypto.SHA256,
	"SHA384": crypto.SHA384, "SHA512": crypto.SHA512,
}

// handleVerifySignature really verifies (RSA PKCS#1 v1.5 or ECDSA), so a dry run exercises the
// branch a real signature would take. It returns ok, err-message as Envoy does.
func handleVerifySignature(s *sandbox, o *object) int {
	const fn = "verifySignature"
	hashName := s.argString(fn, 1)
	keyDER := s.argString(fn, 2)
	sig, sigLen := s.argString(fn, 3), s.argInt(fn, 4)
	data, dataLen := s.argString(fn, 5), s.argInt(fn, 6)
	key, ok := s.keys[keyDER]
	if !ok {
		s.apiErrorf("verifySignature(): invalid public key (pass the value of importPublicKey(...):get())")
	}
	if sigLen < 0 || sigLen > int64(len(sig)) || dataLen < 0 || dataLen > int64(len(data)) {
		s.apiErrorf("verifySignature(): a length argument does not fit its string")
	}
	h, ok := signatureHashes[hashName]
	if !ok {
		s.L.Push(lua.LFalse)
		s.L.Push(lua.LString(hashName + " is not supported."))
		return 2
	}
	d := h.New()
	d.Write([]byte(data[:dataLen]))
	digest := d.Sum(nil)
	var err error
	switch k := key.(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(k, h, digest, []byte(sig[:sigLen]))
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, []byte(sig[:sigLen])) {
			err = fmt.Errorf("signature mismatch")
		}
	default:
		err = fmt.Errorf("unsupported key type %T", key)
	}
	if err != nil {
		s.L.Push(lua.LFalse)
		s.L.Push(lua.LString("Failed to verify digest: " + err.Error()))
		return 2
	}
	s.L.Push(lua.LTrue)
	s.L.Push(lua.LNil)
	return 2
}
