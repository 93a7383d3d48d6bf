package chaos

import (
	"fmt"
	"time"
)

// Profile sizes a run. Short is the default (go test, make test); Full is `make test-chaos`
// (CHAOS_PROFILE=full), whose figures docs/reliability.md quotes.
type Profile struct {
	Name string
	// Clients per deployment, over Tenants tenants, and Rate events/s per publisher.
	Clients, Tenants int
	Rate             float64
	// ClassicRate is the load while a classic/quorum bridge is down: low enough that the whole
	// outage fits in the new process's replay ring (ReplaySize-Prefetch events).
	ClassicRate float64
	// StreamKills kill -9s of stream replicas; BrokerRestarts; Resets of every broker connection.
	StreamKills, BrokerRestarts, Resets int
	// BridgeDown is how long a killed or drained classic/quorum bridge stays down.
	BridgeDown time.Duration
	// Blackhole is how long the network to a replica drops everything.
	Blackhole time.Duration
	// SlowFor is how long slow clients are fed beyond what they can read.
	SlowFor time.Duration
	// Soak: SoakClients clients on a two-replica stream at SoakRate events/s for Soak.
	Soak        time.Duration
	SoakClients int
	SoakTenants int
	SoakRate    float64
}

var profiles = map[string]Profile{
	"short": {Name: "short", Clients: 8, Tenants: 4, Rate: 50, ClassicRate: 50,
		StreamKills: 3, BrokerRestarts: 1, Resets: 2, BridgeDown: 5 * time.Second, Blackhole: 15 * time.Second,
		SlowFor: 10 * time.Second, Soak: 30 * time.Second, SoakClients: 40, SoakTenants: 8, SoakRate: 100},
	"full": {Name: "full", Clients: 40, Tenants: 8, Rate: 300, ClassicRate: 50,
		StreamKills: 10, BrokerRestarts: 3, Resets: 5, BridgeDown: 5 * time.Second, Blackhole: 40 * time.Second,
		SlowFor: 60 * time.Second, Soak: 10 * time.Minute, SoakClients: 300, SoakTenants: 30, SoakRate: 300},
}

// ProfileNamed returns the profile called name ("" is short).
func ProfileNamed(name string) (Profile, error) {
	if name == "" {
		name = "short"
	}
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("CHAOS_PROFILE %q: want short or full", name)
	}
	return p, nil
}

// hold lets a fault last d. It is the length of the fault the scenario injects (a bridge down
// for 5 s, a 15 s blackhole, slow clients fed for 10 s), never a wait for something to happen:
// those wait with waitFor and a deadline.
func hold(d time.Duration) { time.Sleep(d) }
