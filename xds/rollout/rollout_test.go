package rollout

import (
	"context"
	"fmt"
	"testing"
	"time"
)

const cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// A change is pending on a stream until the stream ACKs, for every type it was sent, a version made at
// or after the change; then the report says when.
func TestChangeReachesStreamsOnAck(t *testing.T) {
	log := &benchLog{}
	tr := New(log)
	log.add(1)
	tr.Published("envoy", 1, map[string]string{benchEDS: "e1", cds: "c1"})
	for id := int64(1); id <= 2; id++ {
		tr.Opened(id, "envoy")
		tr.Sent(id, benchEDS)
		tr.Sent(id, cds)
		tr.Acked(id, cds, "c1", time.Now())
		tr.Acked(id, benchEDS, "e1", time.Now())
	}
	log.add(2) // an endpoint change: only EDS gets a new version
	tr.Published("envoy", 2, map[string]string{benchEDS: "e2", cds: "c1"})
	r, _ := tr.Report(2)
	if r.Nodes.Pending != 2 || r.Nodes.Acked != 0 {
		t.Fatalf("before ACKs: %+v", r.Nodes)
	}
	tr.Acked(1, benchEDS, "e2", time.Now())
	r, _ = tr.Report(2)
	if r.Nodes.Pending != 1 || r.Nodes.Acked != 1 || r.FirstAckMs == nil || r.LastAckMs != nil {
		t.Fatalf("after one ACK: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go tr.Acked(2, benchEDS, "e2", time.Now())
	if r, ok := tr.Wait(ctx, 2); !ok || r.Nodes.Pending != 0 || r.LastAckMs == nil {
		t.Fatalf("wait returned %+v", r)
	}
	// Change 1 was reached too, at the first ACK of both types.
	if r, _ := tr.Report(1); r.Nodes.Acked != 2 {
		t.Fatalf("change 1: %+v", r.Nodes)
	}
}

// A NACKed version marks the changes since the last good one as rejected, until a later version is ACKed.
func TestNackIsAttributedUntilFixed(t *testing.T) {
	log := &benchLog{}
	tr := New(log)
	log.add(1)
	tr.Published("envoy", 1, map[string]string{cds: "c1"})
	tr.Opened(1, "envoy")
	tr.Sent(1, cds)
	tr.Acked(1, cds, "c1", time.Now())
	log.add(2)
	tr.Published("envoy", 2, map[string]string{cds: "bad"})
	if cs := tr.Nacked(1, cds, "bad", "no"); len(cs) != 1 || cs[0].Revision != 2 {
		t.Fatalf("NACK attributed to %v", cs)
	}
	if r, _ := tr.Report(2); r.Nodes.Nacked != 1 || r.Rejections["1"] != "no" {
		t.Fatalf("after NACK: %+v", r)
	}
	log.add(3)
	tr.Published("envoy", 3, map[string]string{cds: "c3"})
	tr.Acked(1, cds, "c3", time.Now())
	if r, _ := tr.Report(2); r.Nodes.Acked != 1 || r.Nodes.Nacked != 0 {
		t.Fatalf("after the fix: %+v", r.Nodes)
	}
}

// A stream that lives through many changes keeps a bounded record of them.
func TestLongLivedStreamMemoryIsBounded(t *testing.T) {
	log := &benchLog{}
	tr := New(log)
	tr.Opened(1, "envoy")
	for rev := uint64(1); rev <= 3000; rev++ {
		log.add(rev)
		v := fmt.Sprint(rev)
		tr.Published("envoy", rev, map[string]string{cds: v})
		tr.Sent(1, cds)
		tr.Acked(1, cds, v, time.Now())
	}
	s := tr.streams[1]
	if len(s.runs) > recentSize || len(tr.recent) > recentSize || len(tr.spans["envoy"][cds]) > recentSize+1 {
		t.Fatalf("%d runs, %d recent changes, %d versions kept", len(s.runs), len(tr.recent), len(tr.spans["envoy"][cds]))
	}
	if r, ok := tr.Report(3000); !ok || r.Nodes.Acked != 1 {
		t.Fatalf("newest change: %+v", r)
	}
}

// A stream that rejects every new version of one type, while that type changes thousands of times, holds
// only the rejections of recent changes.
func TestRejectionsOfAStuckStreamAreBounded(t *testing.T) {
	log := &benchLog{}
	tr := New(log)
	log.add(1)
	tr.Published("envoy", 1, map[string]string{cds: "c1"})
	tr.Opened(1, "envoy")
	tr.Sent(1, cds)
	tr.Acked(1, cds, "c1", time.Now())
	for rev := uint64(2); rev <= 5000; rev++ {
		log.add(rev)
		v := fmt.Sprintf("c%d", rev)
		tr.Published("envoy", rev, map[string]string{cds: v})
		tr.Nacked(1, cds, v, "rejected")
	}
	if n := len(tr.streams[1].nacked); n > 2*recentSize {
		t.Fatalf("the stream holds %d rejected changes after 5,000, want at most %d", n, 2*recentSize)
	}
	if r, _ := tr.Report(5000); r.Nodes.Nacked != 1 {
		t.Fatalf("the newest change: %+v, want rejected by the stream", r.Nodes)
	}
}
