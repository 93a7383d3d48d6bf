package chaos

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// bridgeKill kill -9s the single bridge of a classic and of a quorum deployment under load,
// keeps it down for the profile's BridgeDown and starts it again. Its clients reconnect with an
// id of the dead process: every event published from the kill on must reach every client that
// reconnects while the new process's ring still holds it (duplicates allowed, counted).
func (s *suite) bridgeKill(t *testing.T) {
	s.bridgeOutage(t, "bridge kill -9", func(d *Deployment) (instant, error) { return d.KillReplica(0), nil })
}

// bridgeDrain is bridgeKill with SIGTERM: the bridge drains (its streams end with retry:,
// unacked deliveries go back to the queue) and must exit 0.
func (s *suite) bridgeDrain(t *testing.T) {
	s.bridgeOutage(t, "bridge drain (SIGTERM)", func(d *Deployment) (instant, error) { return d.TerminateReplica(0) })
}

func (s *suite) bridgeOutage(t *testing.T, name string, stop func(*Deployment) (instant, error)) {
	p := s.profile
	sc := s.begin(t, name)
	deployments := []*Deployment{
		sc.deploy(Spec{Name: "classic", QueueType: "classic", Clients: p.Clients, Tenants: p.Tenants, Rate: p.ClassicRate}),
		sc.deploy(Spec{Name: "quorum", QueueType: "quorum", Clients: p.Clients, Tenants: p.Tenants, Rate: p.ClassicRate}),
	}
	for _, d := range deployments {
		d.StartPublishing()
		sc.progress(d, 30*time.Second, "the start")
	}
	stoppedAt := make([]instant, len(deployments))
	for i, d := range deployments {
		at, err := stop(d)
		stoppedAt[i] = at
		sc.check(d, "bridge exit status", "0 (or killed)", fmt.Sprint(err), err == nil)
	}
	hold(p.BridgeDown)
	restarted := make([]instant, len(deployments))
	for i, d := range deployments {
		if err := d.StartReplica(0); err != nil {
			t.Fatal(err)
		}
		restarted[i] = now()
	}
	for i, d := range deployments {
		sc.progress(d, 60*time.Second, "the restart")
		took, seen := d.FirstDeliveryAfter(restarted[i])
		if seen {
			sc.figure(d, "bridge ready → first new event at every client", seconds(took))
		}
		silences := d.Silences(stoppedAt[i], now(), d.FastClients())
		slices.Sort(silences)
		sc.figure(d, "client silence", fmt.Sprintf("longest %s, median %s", seconds(silences[len(silences)-1]), seconds(silences[len(silences)/2])))
	}
	for i, d := range deployments {
		owed := &DownWindow{From: stoppedAt[i], Ring: ReplaySize - Prefetch}
		fast, _ := sc.settle(d, owed)
		sc.check(d, "events published while the bridge was down or restarting that did not reach a reconnected client",
			"0", fmt.Sprint(fast.OwedMissed), fast.OwedMissed == 0)
		sc.figure(d, "lost with a gap, duplicated (at-least-once)", fmt.Sprintf("%d, %d", fast.LostSignalled, fast.Duplicated))
	}
}
