package main

import (
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/test/localproc"
)

// backend is one demo backend process and its Consul registration.
type backend struct {
	Name    string `json:"name"`    // what it answers with
	Service string `json:"service"` // its Consul service, hence its upstream
	Addr    string `json:"addr"`
	PID     int    `json:"pid"`
	proc    *localproc.Process
}

// registrator stands in for Registrator: it registers a backend in Consul once the backend listens and
// deregisters it when the process exits, as Registrator does on Docker's start and die events. Like
// Registrator's default, the registration has no health check: a backend is there until it stops.
type registrator struct {
	agent *api.Agent
	out   io.Writer // where it reports deregistrations
}

func (r *registrator) register(b *backend) error {
	host, port, err := net.SplitHostPort(b.Addr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	return r.agent.ServiceRegister(&api.AgentServiceRegistration{ID: b.Name, Name: b.Service, Address: host, Port: p})
}

// deregisterOnExit waits for the backend to exit and deregisters it, unless the whole demo is stopping.
func (r *registrator) deregisterOnExit(b *backend, stopping <-chan struct{}) {
	<-b.proc.Done()
	select {
	case <-stopping:
		return
	default:
	}
	if err := r.agent.ServiceDeregister(b.Name); err != nil {
		fmt.Fprintf(r.out, "%s (pid %d) exited, but deregistering it from Consul failed: %v\n", b.Name, b.PID, err)
		return
	}
	fmt.Fprintf(r.out, "%s (pid %d) exited (%s): deregistered from Consul, as Registrator does when a container stops\n",
		b.Name, b.PID, b.proc.State())
}
