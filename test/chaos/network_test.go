package chaos

import (
	"fmt"
	"testing"
	"time"
)

// connectionReset cuts every broker connection of every bridge with an RST (a load balancer or
// NAT dropping the flows) under load; the broker never stops accepting, so each deployment must
// deliver again within 2 s, without losing anything.
func (s *suite) connectionReset(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "connection reset")
	deployments := []*Deployment{
		sc.deploy(Spec{Name: "stream ×2", QueueType: "stream", Replicas: 2, Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate}),
		sc.deploy(Spec{Name: "classic", QueueType: "classic", Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate}),
	}
	for _, d := range deployments {
		d.StartPublishing()
		sc.progress(d, 30*time.Second, "the start")
	}
	worst := make([]time.Duration, len(deployments))
	seen := []bool{true, true}
	for k := 0; k < p.Resets; k++ {
		reset := now()
		for _, d := range deployments {
			for _, r := range d.Replicas() {
				r.Proxy.Reset()
			}
		}
		for i, d := range deployments {
			sc.progress(d, 60*time.Second, fmt.Sprintf("reset %d", k+1))
			took, ok := d.FirstDeliveryAfter(reset)
			worst[i] = max(worst[i], took)
			seen[i] = seen[i] && ok
		}
	}
	for i, d := range deployments {
		sc.within(d, fmt.Sprintf("reset → first new event at every client (worst of %d)", p.Resets), deliveringAgain, worst[i], seen[i])
		fast, _ := sc.settle(d, nil)
		if d.QueueType == "stream" {
			sc.exact(d, fast)
		} else {
			sc.check(d, "confirmed events missing", "0", fmt.Sprint(fast.Lost()), fast.Lost() == 0)
		}
	}
}

// blackhole silently drops all traffic between one stream replica and the broker (the other
// replica stays healthy), and between a classic bridge and the broker, for the profile's
// Blackhole. Each bridge must notice within 5 s (readiness off); clients of the cut-off stream
// replica must be silent at most 8 s (the replica ends their streams with retry: and they
// resume on the healthy one); after the heal every deployment delivers again (how fast is
// reported) and nothing is lost.
func (s *suite) blackhole(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "blackhole")
	stream := sc.deploy(Spec{Name: "stream ×2", QueueType: "stream", Replicas: 2, Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate})
	classic := sc.deploy(Spec{Name: "classic", QueueType: "classic", Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate})
	for _, d := range []*Deployment{stream, classic} {
		d.StartPublishing()
		sc.progress(d, 30*time.Second, "the start")
	}

	cut := now()
	onCut := stream.ClientsOn(0, cut)
	stream.Replica(0).Proxy.Blackhole()
	classic.Replica(0).Proxy.Blackhole()
	hold(p.Blackhole)
	healed := now()
	stream.Replica(0).Proxy.Heal()
	classic.Replica(0).Proxy.Heal()

	for _, d := range []*Deployment{stream, classic} {
		took, seen := d.NotReadyAfter(0, cut)
		sc.within(d, fmt.Sprintf("blackhole (%s) → replica 0 not ready", seconds(p.Blackhole)), deadConnection, took, seen && cut+took < healed)
	}
	sc.silence(stream, "silence of the cut-off replica's clients (other replica healthy)", cutOffSilence, stream.Silences(cut, healed, onCut))

	for _, d := range []*Deployment{stream, classic} {
		sc.progress(d, 90*time.Second, "the heal")
		// A figure, not the 2 s target: after a partition the broker may still hold the dead
		// connection, and with it a classic queue's exclusive consumer, until it notices.
		if took, seen := d.FirstDeliveryAfter(healed); seen {
			sc.figure(d, "heal → first new event at every client", seconds(took))
		}
		ready, ok := d.Replica(0).Ready.FirstAfter(healed, true)
		if ok {
			sc.figure(d, "heal → replica 0 ready", seconds(ready-healed))
		}
	}
	fast, _ := sc.settle(stream, nil)
	sc.exact(stream, fast)
	fast, _ = sc.settle(classic, nil)
	sc.check(classic, "confirmed events missing", "0", fmt.Sprint(fast.Lost()), fast.Lost() == 0)
}
