package luafilters

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// FuzzValidate feeds arbitrary source to Validate. It must never panic, never report an
// internal error (a dynup bug), only return *ValidationError, and always return within its
// limits. The seed corpus is the examples plus the bad snippets.
func FuzzValidate(f *testing.F) {
	for _, pattern := range []string{"examples/*.lua", "testdata/bad/*.lua"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			f.Add(readSnippet(f, file))
		}
	}
	f.Add("")
	f.Add("function envoy_on_request(h) h:headers():add(h:body(true):getBytes(0, 0), '') end")
	f.Add("function envoy_on_response(h) for k, v in pairs(h:headers()) do h:logInfo(k) end end")

	lim := Limits{MaxSourceBytes: 16 << 10, MaxInstructions: 50_000, Timeout: 200 * time.Millisecond, MaxAllocBytes: 4 << 20}
	// Generous slack: the race detector and a busy fuzzing machine slow everything down, but a
	// run that ignores its timeout would take far longer than this.
	const slack = 3 * time.Second
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		err := Validate(src, lim)
		if elapsed := time.Since(start); elapsed > lim.Timeout+slack {
			t.Fatalf("Validate took %v with a %v timeout", elapsed, lim.Timeout)
		}
		if err == nil {
			return
		}
		var verr *ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("want *ValidationError, got %T: %v", err, err)
		}
		switch verr.Phase {
		case PhaseSize, PhaseSyntax, PhaseEntryPoint, PhaseRuntime, PhaseAPI, PhaseLimit:
		default:
			t.Fatalf("phase %q: %v", verr.Phase, verr)
		}
		if verr.Msg == "" || verr.Line < 0 {
			t.Fatalf("malformed error %#v", verr)
		}
	})
}

func BenchmarkValidateExample(b *testing.B) {
	src := readSnippet(b, "examples/deny_delete_admin.lua")
	for b.Loop() {
		if err := Validate(src, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}
