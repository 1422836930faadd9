package rollout

import (
	"math/rand"
	"testing"
	"time"
)

// Published evaluates only the streams that may have come to contain the new revision; whatever the
// sequence of publishes (versions that change, stay or come back), streams, sends and ACKs, every change's
// report is the one a tracker that evaluates every stream gives.
func TestPublishedSkipsOnlyStreamsThatCannotAdvance(t *testing.T) {
	types := []string{cds, benchEDS}
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		log := &benchLog{}
		skipping, every := New(log), New(log)
		every.evaluateEveryStream = true
		both := func(f func(*Tracker)) { f(skipping); f(every) }
		groups := []string{"a", "b"}
		current := map[string]map[string]string{}
		rev := uint64(0)
		var ids []int64
		for step := 0; step < 400; step++ {
			switch op := rng.Intn(10); {
			case op < 3:
				rev++
				log.add(rev)
				for _, g := range groups {
					v := map[string]string{}
					for _, typ := range types {
						v[typ] = current[g][typ]
						if v[typ] == "" || rng.Intn(2) == 0 {
							v[typ] = typ[len(typ)-3:] + string(rune('0'+rng.Intn(3))) // few versions: they come back
						}
					}
					current[g] = v
					both(func(tr *Tracker) { tr.Published(g, rev, v) })
				}
			case op < 4:
				id := int64(len(ids) + 1)
				ids = append(ids, id)
				g := groups[rng.Intn(len(groups))]
				both(func(tr *Tracker) { tr.Opened(id, g) })
			case len(ids) == 0:
			case op < 6:
				id, typ := ids[rng.Intn(len(ids))], types[rng.Intn(len(types))]
				both(func(tr *Tracker) { tr.Sent(id, typ) })
			default:
				id, typ := ids[rng.Intn(len(ids))], types[rng.Intn(len(types))]
				s := every.streams[id]
				v := current[s.group][typ]
				if rng.Intn(4) == 0 {
					v = typ[len(typ)-3:] + string(rune('0'+rng.Intn(3))) // an older version, late
				}
				at := time.Unix(int64(step), 0)
				both(func(tr *Tracker) { tr.Acked(id, typ, v, at) })
			}
			for r := uint64(1); r <= rev; r++ {
				a, okA := skipping.Report(r)
				b, okB := every.Report(r)
				if okA != okB || a.Nodes != b.Nodes || (a.LastAckMs == nil) != (b.LastAckMs == nil) {
					t.Fatalf("seed %d step %d: change %d: skipping reports %+v (%v), evaluating every stream %+v (%v)",
						seed, step, r, a.Nodes, a.LastAckMs != nil, b.Nodes, b.LastAckMs != nil)
				}
			}
		}
	}
}
