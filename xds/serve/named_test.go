package serve

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/test/harness"
)

// A proxyless gRPC client subscribes to the resources of its own target only, so it is never sent a change
// to another upstream. Rollout tracking must still count it as having that change (it has everything it
// wants), or /changes and ?wait= would report it pending forever; and a change to its own upstream must
// still wait for its ACK.
func TestNamedSubscriberReachesChangesToOtherUpstreams(t *testing.T) {
	f := serve(t)
	a1, a2, b := harness.StartBackend(t, "a1"), harness.StartBackend(t, "a2"), harness.StartBackend(t, "b")
	up := func(name string, be *harness.Backend) registry.Upstream {
		port, _ := strconv.Atoi(portOf(t, be.Addr()))
		return registry.Upstream{Name: name, Servers: []registry.Server{{Host: "127.0.0.1", Port: port}}}
	}
	f.publish(up("a", a1), up("b", b))
	cc := harness.XDSClient(t, f.addr, "a", harness.ClientNode{ID: "grpc-1"})
	harness.Until(t, 10*time.Second, func() error {
		who, err := harness.Who(context.Background(), cc)
		if err == nil && who != "a1" {
			err = fmt.Errorf("answered by %q, want a1", who)
		}
		return err
	})
	wait := func(rev uint64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, ok := f.rollout.Wait(ctx, rev)
		if !ok || r.Nodes.Pending != 0 || r.Nodes.Acked != 1 {
			t.Fatalf("change %d: %+v (known %v), want ACKed by the one client", rev, r.Nodes, ok)
		}
	}
	wait(1)

	// b moves: the client is sent nothing, yet it has the change.
	moved := up("b", b)
	moved.Servers[0].Weight = 5
	f.publish(up("a", a1), moved)
	wait(2)
	// The node view shows it on the group's new version too, not as out of date.
	snap, _ := f.pub.Cache().Snapshot("grpc")
	for _, n := range f.tracker.Nodes() {
		for typ, ts := range n.Types {
			if ts.AckedVersion != snap.Version(typ) {
				t.Errorf("%s: node shown on version %s, its group is on %s", typ, ts.AckedVersion, snap.Version(typ))
			}
		}
	}

	// a moves: the client must be sent it and ACK before the change counts as reached.
	f.publish(up("a", a2), moved)
	wait(3)
	harness.Until(t, 10*time.Second, func() error {
		who, err := harness.Who(context.Background(), cc)
		if err == nil && who != "a2" {
			err = fmt.Errorf("answered by %q, want a2", who)
		}
		return err
	})
}

func portOf(t *testing.T, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
