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
// clients at the next kill. Malformed messages published before each kill must reach the
// dead-letter queue once each, whatever the replicas and restarts.
func (s *suite) streamReplicaKills(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "stream replica kill -9")
	d := sc.deploy(Spec{Name: "stream ×2", QueueType: "stream", Replicas: 2, Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate})
	d.StartPublishing()
	sc.progress(d, 30*time.Second, "the start")

	var silences []time.Duration
	var worstReady time.Duration
	malformed := 0
	for k := 0; k < p.StreamKills; k++ {
		n, err := d.PublishMalformed(malformedPerKill)
		malformed += n
		if err != nil {
			t.Fatal(err)
		}
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

	// Every malformed message was read by both replicas and again by each restarted one; the
	// dead-letter queue must still get one copy of each. Wait for all, then a little longer
	// for extra copies: a replica that restarted last dead-letters what it re-reads at once.
	var copies int
	waitFor(30*time.Second, func() bool {
		copies, _ = d.DeadLettered()
		return copies >= malformed
	})
	waitFor(2*time.Second, func() bool { // extra copies would arrive within this
		more, _ := d.DeadLettered()
		return more > copies
	})
	copies, _ = d.DeadLettered()
	sc.check(d, fmt.Sprintf("dead-letter copies of %d malformed messages (2 replicas, %d restarts)", malformed, p.StreamKills),
		fmt.Sprint(malformed), fmt.Sprint(copies), copies == malformed)
}

// malformedPerKill malformed messages are published before each kill of a stream replica.
const malformedPerKill = 2

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
