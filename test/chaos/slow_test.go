package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// slowClients feeds each overflow policy's slow clients twice what they read, next to fast
// clients of the same tenant. Fast clients must get everything without a gap (a slow client
// never slows the others); slow clients may miss events only as the policy says: with a gap
// (dropOldest), superseded by a newer event of the same routing key (lastValue), or by being
// disconnected and resuming with Last-Event-ID (disconnect). Nothing silently.
func (s *suite) slowClients(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "slow clients")
	var deployments []*Deployment
	for _, policy := range []string{"dropOldest", "lastValue", "disconnect"} {
		deployments = append(deployments, sc.deploy(Spec{Name: policy, QueueType: "classic", Overflow: policy, BufferSize: 64,
			Clients: 3, SlowClients: 2, SlowReadDelay: 20 * time.Millisecond, Tenants: 1, Jobs: 4, Rate: 100}))
	}
	for _, d := range deployments {
		d.StartPublishing()
	}
	hold(p.SlowFor)
	for _, d := range deployments {
		fast, slow := sc.settle(d, nil)
		sc.check(d, "fast clients: lost, gaps", "0, 0", fmt.Sprintf("%d, %d", fast.Lost(), fast.Gaps), fast.Lost() == 0 && fast.Gaps == 0)
		switch d.Overflow {
		case "dropOldest":
			sc.check(d, "slow clients: events dropped with a gap (the buffer overflowed)", "> 0", fmt.Sprint(slow.LostSignalled), slow.LostSignalled > 0)
		case "lastValue":
			sc.check(d, "slow clients: events superseded by a newer one of the same key", "> 0", fmt.Sprint(slow.Superseded), slow.Superseded > 0)
		case "disconnect":
			sc.check(d, "slow clients: disconnected and resumed", "> 0", fmt.Sprint(slow.Resumes), slow.Resumes > 0)
		}
		dropped := 0.0
		for _, r := range d.Replicas() {
			if m, err := r.Metrics(); err == nil {
				dropped += m[metrics.EventsDropped]
			}
		}
		sc.figure(d, "slow clients: missed (lost + superseded) vs the bridge's dropped_total",
			fmt.Sprintf("%d vs %.0f", slow.Lost()+slow.Superseded, dropped))
	}
}
