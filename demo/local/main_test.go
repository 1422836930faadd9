package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dynup/dynup/test/localproc"
)

// test/demolocal runs this program end to end; these cover what a successful run there does not.

func TestBadArgumentsExit2(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"extra"}} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, &bytes.Buffer{}, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}

func TestConsulMustBeOnLoopback(t *testing.T) {
	_, _, err := startConsul(&localproc.Group{}, t.TempDir(), "/nonexistent", "0.0.0.0:8500", nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("err = %v, want a refusal naming 127.0.0.1", err)
	}
}

func TestDynupReadyReadsItsListeningLine(t *testing.T) {
	v, ok := dynupReady(`{"time":"…","level":"INFO","msg":"listening","admin":"127.0.0.1:1995","xds":"127.0.0.1:18000"}`)
	if !ok || v != [2]string{"127.0.0.1:1995", "127.0.0.1:18000"} {
		t.Errorf("got %v %v", v, ok)
	}
	for _, line := range []string{`{"msg":"change published"}`, `listening`, `{"msg":"listening","admin":"x"}`} {
		if _, ok := dynupReady(line); ok {
			t.Errorf("%s taken for the listening line", line)
		}
	}
}

func TestGRPCBootstrapNamesDynupAndTheZone(t *testing.T) {
	var b struct {
		XDSServers []struct {
			ServerURI string `json:"server_uri"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Locality map[string]string `json:"locality"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(grpcBootstrap("127.0.0.1:18000"), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.XDSServers) != 1 || b.XDSServers[0].ServerURI != "127.0.0.1:18000" || b.Node.ID != clientNodeID ||
		b.Node.Locality["zone"] != clientZone || b.Node.Metadata["dynup.kind"] != "grpc" {
		t.Errorf("bootstrap %+v", b)
	}
}
