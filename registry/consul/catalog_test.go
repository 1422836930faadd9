package consul

import (
	"testing"

	"github.com/hashicorp/consul/api"
)

func entry(id, addr string, port int, status string, weights api.AgentWeights, meta, nodeMeta map[string]string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n-" + id, Address: "192.0.2.1", Meta: nodeMeta},
		Service: &api.AgentService{ID: id, Service: "web", Address: addr, Port: port, Weights: weights, Meta: meta},
		Checks:  api.HealthChecks{{Status: status}},
	}
}

func TestServersFromHealthEntries(t *testing.T) {
	ds, skipped := servicesFromEntries([]*api.ServiceEntry{
		entry("a", "10.0.0.1", 80, api.HealthPassing, api.AgentWeights{Passing: 3, Warning: 1}, map[string]string{"zone": "z1", "dynup-domains": "Web.example.com, www.example.com"}, nil),
		entry("b", "10.0.0.2", 80, api.HealthWarning, api.AgentWeights{Passing: 3, Warning: 1}, nil, map[string]string{"zone": "z2"}),
		entry("c", "10.0.0.3", 80, api.HealthCritical, api.AgentWeights{}, nil, nil),
		entry("d", "10.0.0.4", 80, api.HealthMaint, api.AgentWeights{}, nil, nil),
		entry("e", "", 8080, api.HealthPassing, api.AgentWeights{}, map[string]string{"weight": "7"}, nil), // node address
		entry("f", "web.internal", 80, api.HealthPassing, api.AgentWeights{}, nil, nil),
	})
	type want struct {
		host   string
		port   int
		weight int
		zone   string
	}
	wants := []want{{"10.0.0.1", 80, 3, "z1"}, {"10.0.0.2", 80, 1, "z2"}, {"192.0.2.1", 8080, 7, ""}}
	if len(ds.Servers) != len(wants) {
		t.Fatalf("servers %+v", ds.Servers)
	}
	for i, w := range wants {
		s := ds.Servers[i]
		if s.Host != w.host || s.Port != w.port || s.Weight != w.weight || s.Zone != w.zone || s.Source != "consul" {
			t.Errorf("server %d = %+v, want %+v", i, s, w)
		}
	}
	if len(ds.Domains) != 2 || ds.Domains[0] != "web.example.com" {
		t.Errorf("domains %v", ds.Domains)
	}
	if skipped == "" {
		t.Error("the instance with a host name must be reported as skipped")
	}
}
