package localproc

import (
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/test/consulagent"
)

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v", ports)
		}
		seen[p] = true
	}
}

// StartConsul returns once the agent takes registrations.
func TestStartConsulTakesRegistrations(t *testing.T) {
	bin := consulagent.Binary(t)
	dir := t.TempDir()
	p, addr, err := StartConsul(dir, bin, "localproc-test", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	c, err := ConsulClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 9}); err != nil {
		t.Fatalf("registering at once: %v", err)
	}
	p.Stop()
	if !p.Exited() {
		t.Error("agent running after Stop")
	}
}

func TestStartConsulReportsAnAgentThatExits(t *testing.T) {
	_, _, err := StartConsul(t.TempDir(), "/bin/false", "x", 0, nil)
	if err == nil {
		t.Fatal("no error for an agent that exits at once")
	}
}
