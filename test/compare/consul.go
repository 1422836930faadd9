package main

import (
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/test/localproc"
)

// consulNode is the name of the benchmark's only Consul node.
const consulNode = "dynup-compare"

// startConsul runs a Consul agent in dev mode (one in-memory server, as demo/local does), every listener
// on 127.0.0.1, and returns its HTTP address once registrations work.
func startConsul(procs *localproc.Group, dir, bin string, env []string) (string, error) {
	p, addr, err := localproc.StartConsul(dir, bin, consulNode, 0, env)
	if err != nil {
		return "", err
	}
	procs.Add(p)
	return addr, nil
}

// registrar starts instances and registers them with the Consul agent, as Registrator does for containers:
// no health check, so an instance is passing as soon as the agent has it.
type registrar struct {
	agent *api.Agent
	seq   int
}

func (r *registrar) add() (*backend, error) {
	r.seq++
	b, err := startBackend(fmt.Sprintf("%s-%03d", service, r.seq))
	if err != nil {
		return nil, err
	}
	if err := r.agent.ServiceRegister(&api.AgentServiceRegistration{ID: b.id, Name: service, Address: "127.0.0.1", Port: b.port}); err != nil {
		b.stop()
		return nil, fmt.Errorf("registering %s: %w", b.id, err)
	}
	return b, nil
}

func (r *registrar) remove(b *backend) error {
	if err := r.agent.ServiceDeregister(b.id); err != nil {
		return fmt.Errorf("deregistering %s: %w", b.id, err)
	}
	return nil
}
