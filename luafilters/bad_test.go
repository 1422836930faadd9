package luafilters

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// badSnippets lists what each file in testdata/bad must be rejected with. line 0 means the
// error must carry no line; lineTo > 0 allows a range (where an endless loop is interrupted
// depends on timing).
var badSnippets = map[string]struct {
	phase    string
	line     int
	lineTo   int
	contains []string
}{
	"syntax_error.lua":            {PhaseSyntax, 5, 0, []string{"syntax error near 'request_handle'"}},
	"unclosed_function.lua":       {PhaseSyntax, 3, 0, []string{"end of the snippet", "missing 'end'"}},
	"no_entry_point.lua":          {PhaseEntryPoint, 0, 0, []string{"neither envoy_on_request", "envoy_on_response"}},
	"misspelled_entry_point.lua":  {PhaseEntryPoint, 0, 0, []string{"it defines envoy_on_requests, did you mean envoy_on_request?"}},
	"local_entry_point.lua":       {PhaseEntryPoint, 2, 0, []string{"envoy_on_request is declared local", "remove 'local'"}},
	"ngx_exit.lua":                {PhaseAPI, 4, 0, []string{"ngx.* is OpenResty's API; Envoy's is request_handle:", "request_handle:respond("}},
	"infinite_loop.lua":           {PhaseLimit, 4, 6, []string{"exceeded its", "endless loop"}},
	"infinite_loop_at_load.lua":   {PhaseLimit, 3, 5, []string{"exceeded its"}},
	"unknown_handle_method.lua":   {PhaseAPI, 4, 0, []string{"request_handle:foo is not part of Envoy's Lua API"}},
	"typo_in_untaken_branch.lua":  {PhaseAPI, 4, 0, []string{"request_handle:respnd is not part of Envoy's Lua API", "did you mean request_handle:respond?"}},
	"typo_in_helper.lua":          {PhaseAPI, 3, 0, []string{"headers:set is not part of Envoy's Lua API", "headers:replace"}},
	"respond_in_response.lua":     {PhaseAPI, 4, 0, []string{"response_handle:respond is not part of Envoy's Lua API", "only works in envoy_on_request"}},
	"runtime_nil_index.lua":       {PhaseRuntime, 4, 0, []string{"attempt to index", `get("host") returned nil`, `":authority"`}},
	"body_is_nil_on_get.lua":      {PhaseRuntime, 3, 0, []string{"attempt to index", "body() returned nil", "body(true)"}},
	"headers_after_streaming.lua": {PhaseAPI, 4, 0, []string{"headers can no longer be modified", "bodyChunks()"}},
	"handle_kept_in_global.lua":   {PhaseAPI, 9, 0, []string{"request_handle used outside of proper scope"}},
	"os_execute.lua":              {PhaseAPI, 3, 0, []string{"os.* is not available"}},
	"require_module.lua":          {PhaseAPI, 2, 0, []string{"require() is not available"}},
	"pcall_hides_api_error.lua":   {PhaseAPI, 5, 0, []string{"request_handle:getBody is not part of Envoy's Lua API"}},
	"bad_status.lua":              {PhaseAPI, 3, 0, []string{":status must be between 200-599", `"forbidden"`}},
}

func TestBadSnippets(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.lua")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		want, ok := badSnippets[name]
		if !ok {
			t.Errorf("%s has no expectation in badSnippets", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			verr := mustReject(t, Validate(readSnippet(t, f), DefaultLimits()))
			if verr.Phase != want.phase {
				t.Errorf("phase = %q, want %q (%v)", verr.Phase, want.phase, verr)
			}
			if want.lineTo == 0 && verr.Line != want.line || want.lineTo > 0 && (verr.Line < want.line || verr.Line > want.lineTo) {
				t.Errorf("line = %d, want %d..%d (%v)", verr.Line, want.line, max(want.line, want.lineTo), verr)
			}
			for _, s := range want.contains {
				if !strings.Contains(verr.Msg, s) {
					t.Errorf("message %q lacks %q", verr.Msg, s)
				}
			}
			if verr.Line > 0 && !strings.HasPrefix(verr.Error(), "line ") {
				t.Errorf("Error() = %q, want a line prefix", verr.Error())
			}
		})
	}
	for name := range badSnippets {
		if !seen[name] {
			t.Errorf("expectation for missing file testdata/bad/%s", name)
		}
	}
}

// The size check runs before anything else, so a huge snippet costs no parsing.
func TestHugeSourceRejected(t *testing.T) {
	lim := DefaultLimits()
	var b strings.Builder
	b.WriteString("function envoy_on_request(request_handle)\n")
	for b.Len() <= lim.MaxSourceBytes {
		b.WriteString("  request_handle:logInfo(\"padding padding padding padding\")\n")
	}
	b.WriteString("end\n")
	verr := mustReject(t, Validate(b.String(), lim))
	if verr.Phase != PhaseSize || verr.Line != 0 || !strings.Contains(verr.Msg, "limit is 65536 bytes") {
		t.Errorf("got %#v", verr)
	}
	// The same snippet is fine under a larger limit: it is rejected for its size only.
	lim.MaxSourceBytes = 1 << 20
	if err := Validate(b.String(), lim); err != nil {
		t.Errorf("with a 1 MiB limit: %v", err)
	}
}

func mustReject(t testing.TB, err error) *ValidationError {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a *ValidationError, got %T %v", err, err)
	}
	return verr
}
