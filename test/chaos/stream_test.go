package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
)

// streamReplicaKills kill -9s the replicas of a two-replica stream deployment in turn under
// load. Clients of the killed replica reconnect (after the retry: delay) to the other one with
// Last-Event-ID and resume exactly; the killed replica restarts on its address and takes
// clients at the next kill.
func (s *suite) streamReplicaKills(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "stream replica kill -9")
	d := sc.deploy(Spec{Name: "stream ×2", QueueType: "stream", Replicas: 2, Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate})
	d.StartPublishing()
	sc.progress(d, 30*time.Second, "the start")

	var silences []time.Duration
	var worstReady time.Duration
	for k := 0; k < p.StreamKills; k++ {
		victim := k % 2
		on := d.ClientsOn(victim, now())
		killed := d.KillReplica(victim)
		sc.progress(d, 60*time.Second, fmt.Sprintf("kill %d (replica %d, %d clients on it)", k+1, victim, len(on)))
		silences = append(silences, d.Silences(killed, now(), on)...)
		start := now()
		if err := d.StartReplica(victim); err != nil {
			t.Fatal(err)
		}
		worstReady = max(worstReady, now()-start)
		sc.progress(d, 60*time.Second, fmt.Sprintf("restart %d", k+1))
	}
	sc.silence(d, fmt.Sprintf("silence of the killed replica's clients (%d kills)", p.StreamKills), cutOffSilence, silences)
	sc.figure(d, "restart → ready (re-reads the stream's recent history)", seconds(worstReady))
	fast, _ := sc.settle(d, nil)
	sc.exact(d, fast)
}

// soak runs many clients on a two-replica stream under steady load without faults: exact
// delivery, and no goroutine left behind once the clients are gone.
func (s *suite) soak(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "soak")
	d := sc.deploy(Spec{Name: "stream ×2", QueueType: "stream", Replicas: 2, Clients: p.SoakClients, Tenants: p.SoakTenants, Rate: p.SoakRate})
	rssBefore := make([]int64, len(d.Replicas()))
	for i, r := range d.Replicas() {
		st, err := bench.ReadProc(r.PID())
		if err != nil {
			t.Fatal(err)
		}
		rssBefore[i] = st.RSS
	}
	d.StartPublishing()
	sc.progress(d, 30*time.Second, "the start")
	hold(p.Soak)
	fast, _ := sc.settle(d, nil)
	sc.exact(d, fast)
	sc.figure(d, "deliveries", fmt.Sprintf("%d in %s (%d clients, %.0f events/s)", fast.Delivered, p.Soak, fast.Clients, p.SoakRate))
	for i, r := range d.Replicas() {
		st, err := bench.ReadProc(r.PID())
		if err != nil {
			t.Fatal(err)
		}
		sc.figure(d, fmt.Sprintf("replica %d RSS with clients, start → end", i), fmt.Sprintf("%.1f → %.1f MiB", mib(rssBefore[i]), mib(st.RSS)))
	}

	d.StopClients()
	for i, r := range d.Replicas() {
		var goroutines, clients float64
		back := waitFor(30*time.Second, func() bool {
			m, err := r.Metrics()
			if err != nil {
				return false
			}
			goroutines, clients = m["go_goroutines"], m[metrics.Clients]
			return clients == 0 && goroutines <= r.IdleGoroutines+10
		})
		sc.check(d, fmt.Sprintf("replica %d goroutines after the clients left (idle: %.0f)", i, r.IdleGoroutines),
			"≤ idle + 10", fmt.Sprintf("%.0f (clients %.0f)", goroutines, clients), back)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
