package chaos

import (
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// brokerRestart stops and starts the broker under load with a two-replica stream, a classic and
// a quorum deployment. Clients stay connected (heartbeats go on); every confirmed event must
// arrive, and each deployment must deliver again within 2 s of the broker accepting
// connections.
func (s *suite) brokerRestart(t *testing.T) {
	p := s.profile
	sc := s.begin(t, "broker restart")
	deployments := []*Deployment{
		sc.deploy(Spec{Name: "stream ×2", QueueType: "stream", Replicas: 2, Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate}),
		sc.deploy(Spec{Name: "classic", QueueType: "classic", Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate}),
		sc.deploy(Spec{Name: "quorum", QueueType: "quorum", Clients: p.Clients, Tenants: p.Tenants, Rate: p.Rate}),
	}
	for _, d := range deployments {
		d.StartPublishing()
	}
	for _, d := range deployments {
		sc.progress(d, 30*time.Second, "the start")
	}

	worstBack := make([]time.Duration, len(deployments))
	allBack := make([]bool, len(deployments))
	for i := range allBack {
		allBack[i] = true
	}
	var outages []string
	for k := 0; k < p.BrokerRestarts; k++ {
		stopped := now()
		s.node.Stop(t)
		accepts := watchAccepting(s.env.AMQPURL)
		s.node.Start(t)
		back, ok := accepts.wait(2 * time.Minute)
		if !ok {
			t.Fatal("the broker did not accept an AMQP connection within 2 minutes of its start")
		}
		outages = append(outages, seconds(back-stopped))
		for i, d := range deployments {
			sc.progress(d, 90*time.Second, fmt.Sprintf("broker restart %d", k+1))
			took, seen := d.FirstDeliveryAfter(back)
			worstBack[i] = max(worstBack[i], took)
			allBack[i] = allBack[i] && seen
		}
	}
	for i, d := range deployments {
		sc.figure(d, "outage: stop → broker accepts connections", fmt.Sprint(outages))
		sc.within(d, fmt.Sprintf("broker accepts → first new event at every client (worst of %d)", p.BrokerRestarts), deliveringAgain, worstBack[i], allBack[i])
	}
	for _, d := range deployments {
		fast, _ := sc.settle(d, nil)
		if d.QueueType == "stream" {
			sc.exact(d, fast)
		} else {
			// Clients stayed connected and the durable queue kept what was published: nothing may
			// be missing, duplicates (redelivered unacked messages) are allowed and counted.
			sc.check(d, "confirmed events missing (clients stayed connected)", "0", fmt.Sprint(fast.Lost()), fast.Lost() == 0)
		}
	}
}

// acceptWatch records the first moment an AMQP connection to the broker succeeds.
type acceptWatch struct {
	done chan instant
}

// watchAccepting dials url every 50 ms (a full AMQP handshake) from now on until it succeeds.
func watchAccepting(url string) *acceptWatch {
	w := &acceptWatch{done: make(chan instant, 1)}
	go func() {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			conn, err := amqp091.DialConfig(url, amqp091.Config{Dial: amqp091.DefaultDial(time.Second)})
			if err == nil {
				at := now()
				_ = conn.Close()
				w.done <- at
				return
			}
			time.Sleep(50 * time.Millisecond) // probe interval: the resolution of the measure
		}
		close(w.done)
	}()
	return w
}

// wait returns when the broker first accepted a connection.
func (w *acceptWatch) wait(timeout time.Duration) (instant, bool) {
	select {
	case at, ok := <-w.done:
		return at, ok
	case <-time.After(timeout):
		return 0, false
	}
}
