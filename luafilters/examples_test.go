package luafilters

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func readSnippet(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every shipped example must pass validation as-is.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("examples/*.lua")
	if err != nil || len(files) != 3 {
		t.Fatalf("want the 3 example snippets, got %v (%v)", files, err)
	}
	for _, f := range files {
		if err := Validate(readSnippet(t, f), DefaultLimits()); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Each example is dry-run with a request (or response) that triggers it and one that does not.
func TestExampleDryRuns(t *testing.T) {
	const (
		deny  = "examples/deny_delete_admin.lua"
		add   = "examples/add_security_header.lua"
		query = "examples/require_query_param.lua"
	)
	local := func(status int, body string) *LocalReply {
		return &LocalReply{Status: status, Body: body, Headers: []Header{
			{"content-type", "text/plain"}, {"content-length", strconv.Itoa(len(body))},
		}}
	}
	denied := local(403, "DELETE is not allowed on admin.upyun.com\n")
	missing := local(400, "missing query parameter: api_key\n")
	tests := []struct {
		name    string
		file    string
		req     SampleRequest
		resp    *SampleResponse
		action  string
		reply   *LocalReply
		reqHdr  HeaderChanges
		respHdr HeaderChanges
		logs    []LogLine
	}{
		{
			name: "DELETE on the admin host is refused", file: deny,
			req:    SampleRequest{Method: "DELETE", Path: "/users/7", Headers: map[string]string{"Host": "admin.upyun.com"}},
			action: ActionRespond, reply: denied,
			logs: []LogLine{{Level: "warn", Message: "refusing DELETE on admin.upyun.com/users/7", Line: 8}},
		},
		{
			name: "host match ignores case and port", file: deny,
			req:    SampleRequest{Method: "DELETE", Path: "/", Headers: map[string]string{"host": "ADMIN.upyun.com:8443"}},
			action: ActionRespond, reply: denied,
			logs: []LogLine{{Level: "warn", Message: "refusing DELETE on admin.upyun.com/", Line: 8}},
		},
		{
			name: "GET on the admin host passes", file: deny,
			req:    SampleRequest{Method: "GET", Path: "/users/7", Headers: map[string]string{"Host": "admin.upyun.com"}},
			action: ActionContinue,
		},
		{
			name: "DELETE on another host passes", file: deny,
			req:    SampleRequest{Method: "DELETE", Path: "/users/7", Headers: map[string]string{"Host": "www.upyun.com"}},
			action: ActionContinue,
		},
		{
			name: "response without the header gets it", file: add,
			req:     DefaultSampleRequest(),
			resp:    &SampleResponse{Status: 200, Headers: map[string]string{"Content-Type": "text/html"}, Body: "<p>hi</p>"},
			action:  ActionContinue,
			respHdr: HeaderChanges{{Op: OpAdd, Name: "x-content-type-options", Value: "nosniff", Line: 5}},
		},
		{
			name: "response that already sets it is left alone", file: add,
			req:    DefaultSampleRequest(),
			resp:   &SampleResponse{Status: 404, Headers: map[string]string{"X-Content-Type-Options": "nosniff"}},
			action: ActionContinue,
		},
		{
			name: "request without a query string is rejected", file: query,
			req:    SampleRequest{Method: "GET", Path: "/items"},
			action: ActionRespond, reply: missing,
		},
		{
			name: "empty api_key is rejected", file: query,
			req:    SampleRequest{Method: "GET", Path: "/items?api_key="},
			action: ActionRespond, reply: missing,
		},
		{
			name: "a parameter that only starts with api_key does not count", file: query,
			req:    SampleRequest{Method: "GET", Path: "/items?api_key_old=1&page=2"},
			action: ActionRespond, reply: missing,
		},
		{
			name: "api_key among other parameters passes", file: query,
			req:    SampleRequest{Method: "POST", Path: "/items?page=2&api_key=s3cr3t", Body: `{"name":"x"}`},
			action: ActionContinue,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := DryRun(readSnippet(t, tc.file), tc.req, tc.resp, DefaultLimits())
			if err != nil {
				t.Fatalf("DryRun: %v", err)
			}
			if res.Action != tc.action {
				t.Errorf("action = %q, want %q", res.Action, tc.action)
			}
			if !reflect.DeepEqual(res.Respond, tc.reply) {
				t.Errorf("local reply = %+v, want %+v", res.Respond, tc.reply)
			}
			if want := orEmpty(tc.reqHdr); !reflect.DeepEqual(res.RequestHeaders, want) {
				t.Errorf("request header changes = %+v, want %+v", res.RequestHeaders, want)
			}
			if want := orEmpty(tc.respHdr); !reflect.DeepEqual(res.ResponseHeaders, want) {
				t.Errorf("response header changes = %+v, want %+v", res.ResponseHeaders, want)
			}
			if want := tc.logs; want == nil && len(res.Logs) != 0 || want != nil && !reflect.DeepEqual(res.Logs, want) {
				t.Errorf("logs = %+v, want %+v", res.Logs, want)
			}
			// The upstream response is only involved when the request went upstream.
			hasResponse := tc.file == add
			if res.ResponseRan != (hasResponse && tc.action == ActionContinue) {
				t.Errorf("response_ran = %v", res.ResponseRan)
			}
		})
	}
}

func orEmpty(c HeaderChanges) HeaderChanges {
	if c == nil {
		return HeaderChanges{}
	}
	return c
}
