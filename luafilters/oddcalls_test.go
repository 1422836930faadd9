package luafilters

import (
	"errors"
	"testing"
)

// Odd calls into the standard library and the mock must end in a snippet error or success,
// never in a Go panic (reported as PhaseInternal). Each of these once panicked or is a
// boundary worth pinning.
func TestOddCallsNeverFailInternally(t *testing.T) {
	for _, body := range []string{
		"math.random(1, 0)", "math.random(0)", "math.random(-1e300, 1e300)", "math.random(0/0)",
		"math.randomseed(42) local a = math.random(100)", "string.rep('x', -1)", "string.sub('abc', 1e300)",
		"string.byte('abc', -1e300, 1e300)", "unpack({}, 1, 1e7)", "select(-1)", "string.format('%d', 'x')",
		"string.format('%c', 1e10)", "table.insert({}, 1e300, 1)", "table.remove({}, 1e300)",
		"table.sort({3, 1, 2}, function(a, b) return true end)", "string.find('abc', '[')",
		"string.gsub('abc', '(', 'x')", "string.gsub('abc', 'b', '%2')", "string.gsub('abc', 'b', '%')",
		"string.gsub('abc', '', 'x', -1)", "string.format('%s')", "tonumber('10', 99)",
		"_G['__dynup' .. '_concat']()", "string.gsub('abc', '.', function() return {} end)",
		"table.concat({}, '', 1, 1e9)", "next({}, 'nope')", "getmetatable('').__index.rep = nil",
		"local t = setmetatable({}, {__index = function(t, k) return t[k] end}) local x = t.a",
		"h:headers():getAtIndex('a', 1e300)", "h:headers():getAtIndex('a', 0/0)", "h:body(true):getBytes(-1, 0)",
		"h:body(true):getBytes(0, 1e300)", "h:respond({[':status'] = '200'}, nil)", "h:respond({[1] = 'x'})",
		"h:streamInfo():dynamicMetadata():set('a', 'b', {[{}] = 1})", "local t = {} t[1] = t h:streamInfo():dynamicMetadata():set('a', 'b', t)",
		"h:streamInfo():dynamicMetadata():set('a', 'b', 0/0)", "h:importPublicKey('x', 99)", "h:importPublicKey('x', -1)",
		"h:verifySignature('SHA256', 'nokey', '', 0, '', 0)", "h:timestamp(7)", "h:timestampString('x')",
		"local get = h:headers().get get(h:body(true), 'a')", "h:headers():add(1, 2)", "h:httpCall()",
		"h:httpCall('c', {[':method'] = {}}, nil, 1)", "h:httpCall('c', {[':method'] = 'GET', [':path'] = '/', [':authority'] = 'c'}, nil, {timeout_ms = 1.5})",
		"for k, v in pairs(h:streamInfo():dynamicMetadata()) do h:streamInfo():dynamicMetadata():set('a', 'b', 1) end",
		"print(h, h:headers(), nil, {}, 1.5)", "h:logInfo(h)", "tostring(h:connection():ssl())",
	} {
		err := Validate("function envoy_on_request(h)\n  "+body+"\nend", Limits{MaxInstructions: 100_000})
		var verr *ValidationError
		if err != nil && (!errors.As(err, &verr) || verr.Phase == PhaseInternal) {
			t.Errorf("%s: %v", body, err)
		}
	}
}
