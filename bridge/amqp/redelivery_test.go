package amqp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

func TestEventID(t *testing.T) {
	for body, want := range map[string]string{
		`{"id":"e1","team_id":"1"}`:                     "e1",
		`{"team_id":"1","nested":{"id":"x"},"id":"e2"}`: "e2",
		` { "a" : [1, {"id": "no"}], "id" : "e3" } `:    "e3",
		`{"ID":"e4"}`:     "", // the contract's key is exactly "id"
		`{"id":""}`:       "",
		`{"id":5}`:        "",
		`["id","e5"]`:     "",
		`"id"`:            "",
		`{"team_id":"1"}`: "",
	} {
		got, ok := eventID([]byte(body))
		if got != want || ok != (want != "") {
			t.Errorf("eventID(%s) = %q, %v; want %q", body, got, ok, want)
		}
	}
}

// TestRedeliveryFilterKeepsTheLastPrefetchHandedOff: after a drop, the ids kept are those of
// the last prefetch deliveries handed off (the only ones the broker can deliver again), and
// they are forgotten at the first fresh delivery.
func TestRedeliveryFilterKeepsTheLastPrefetchHandedOff(t *testing.T) {
	f := newRedeliveryFilter(3)
	ev := func(id string) []byte { return []byte(`{"id":"` + id + `"}`) }
	for _, id := range []string{"a", "b", "c", "d"} {
		f.handedOff(ev(id))
	}
	f.handedOff([]byte(`{"no":"id"}`))
	f.sessionEnded()
	for id, want := range map[string]bool{"a": false, "b": false, "c": true, "d": true} {
		if got := f.duplicate(true, ev(id)); got != want {
			t.Errorf("redelivered %s: duplicate %v, want %v", id, got, want)
		}
	}
	large := []byte(`{"id":"big","pad":"` + strings.Repeat("x", keptBodyBytes) + `"}`)
	f.handedOff(large)   // kept as its id only
	f.handedOff(ev("c")) // suppressed: kept for the next drop
	f.sessionEnded()     // a second drop before any fresh delivery: c and d are still kept
	if f.recent[0].body != nil || f.recent[0].id != "" {
		t.Error("the ring still references a body after the session ended")
	}
	if !f.duplicate(true, ev("d")) || !f.duplicate(true, ev("c")) || !f.duplicate(true, large) {
		t.Error("a second drop forgot the first one's ids")
	}
	if f.duplicate(false, ev("c")) {
		t.Error("a delivery not marked redelivered is never a duplicate")
	}
	if f.duplicate(true, ev("c")) {
		t.Error("the ids survived the first fresh delivery")
	}
}

// stallingSink records the ids it is handed and holds the stallAt-th Publish until released,
// so that event and the ones before it since the last ack stay unacked; without stallAt, it
// closes reached at the reachAt-th Publish and goes on.
type stallingSink struct {
	stallAt int
	stalled chan struct{} // closed when the stallAt-th Publish waits
	release chan struct{}
	reachAt int
	reached chan struct{}
	// pace is how long each Publish takes (a hub with many clients), so a backlog flows for a
	// while.
	pace time.Duration

	mu  sync.Mutex
	ids []string
}

func (s *stallingSink) Publish(m hub.Message) (*hub.Frame, int) {
	id, _ := eventID(m.Data)
	s.mu.Lock()
	s.ids = append(s.ids, id)
	n := len(s.ids)
	s.mu.Unlock()
	time.Sleep(s.pace)
	switch {
	case s.stallAt > 0 && n == s.stallAt:
		close(s.stalled)
		<-s.release
	case s.reachAt > 0 && n == s.reachAt:
		close(s.reached)
	}
	return nil, 0
}

func (s *stallingSink) Advance(int64) {}

func (s *stallingSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// TestRedeliveriesOfHandedOffEventsAreSuppressed: the broker closes the bridge's connection
// while events are handed to the hub but not acked; the broker delivers them again on the new
// connection, and the hub gets each event exactly once, in order: the redeliveries of events
// already handed off are acked and counted as suppressed.
func TestRedeliveriesOfHandedOffEventsAreSuppressed(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	for _, qt := range []QueueType{Classic, Quorum} {
		t.Run(string(qt), func(t *testing.T) {
			t.Parallel()
			const n = 60
			m := metrics.New()
			sink := &stallingSink{stallAt: 25, stalled: make(chan struct{}), release: make(chan struct{})}
			queue := "suppress-" + string(qt) + "-" + events.NewID()[:8]
			c, p, _ := startConsumer(t, node, Config{
				Queue: queue, QueueType: qt, Prefetch: 100,
				Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}, Metrics: m,
			}, sink)
			want := make([]string, n)
			for i := range want {
				want[i] = "e" + strconv.Itoa(i+1)
				body := fmt.Sprintf(`{"id":%q,"team_id":"1","job_id":"1","status":"running"}`, want[i])
				if err := p.Publish(context.Background(), "team.1.job.1.status", []byte(body), publish.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-sink.stalled:
			case <-time.After(15 * time.Second):
				t.Fatal("the consumer did not reach the stalling event")
			}
			node.CloseConnectionsNamed(t, "eventstream-bridge "+queue)
			poll.Until(t, 10*time.Second, "the consumer's connection closed", func() bool {
				conn := c.conn.Load()
				return conn == nil || conn.IsClosed()
			})
			close(sink.release) // its ack fails: the event comes again on the next connection

			poll.Until(t, 30*time.Second, "every event consumed, the queue settled", func() bool {
				got := sink.received()
				return testutil.ToFloat64(m.Reconnects) >= 1 && len(got) >= n && got[len(got)-1] == want[n-1] &&
					c.Consuming() && queueReady(t, node.URI, queue) == 0
			})
			if got := sink.received(); !slices.Equal(got, want) {
				t.Fatalf("the hub got %d events, want e1..e%d once each in order: %v", len(got), n, got)
			}
			redelivered, suppressed := testutil.ToFloat64(m.Redelivered), testutil.ToFloat64(m.RedeliveredSuppressed)
			if suppressed < 1 || suppressed > redelivered {
				t.Fatalf("suppressed %v of %v redelivered; want ≥ 1 (at least the stalled event)", suppressed, redelivered)
			}
			t.Logf("%d events, %v redelivered after the reset, %v of them suppressed", n, redelivered, suppressed)
		})
	}
}

// TestResetUnderLoadDeliversEachEventOnce: the broker closes the connection while a backlog
// flows at full speed with the default prefetch (batched acks, some of them in flight): the hub
// gets every event exactly once, in order, whatever the broker redelivers.
func TestResetUnderLoadDeliversEachEventOnce(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	queue := "suppress-load-" + events.NewID()[:8]
	exchange := queue + "-x"
	const n = 4000
	m := metrics.New()
	// The first delivery waits until the management API lists the connection, so the reset at
	// the n/4-th is immediate.
	sink := &stallingSink{stallAt: 1, stalled: make(chan struct{}), release: make(chan struct{}),
		reachAt: n / 4, reached: make(chan struct{}), pace: time.Millisecond}
	c := New(Config{
		URL: node.URI, Exchange: exchange, Queue: queue, QueueType: Classic, DeclareTopology: true,
		Template: events.MustParseTemplate(events.DefaultRoutingKeyTemplate),
		Backoff:  Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
	}, sink)
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	if err := declareTopology(rabbitmqtest.Channel(t, node.URI), c.cfg); err != nil {
		t.Fatal(err)
	}
	p, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := make([]string, n)
	var confirms []*publish.Confirmation
	for i := range want {
		want[i] = "e" + strconv.Itoa(i+1)
		body := fmt.Sprintf(`{"id":%q,"team_id":"1","job_id":"1","status":"running"}`, want[i])
		dc, err := p.PublishDeferred(context.Background(), "team.1.job.1.status", []byte(body), publish.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		if err := publish.WaitConfirm(context.Background(), dc); err != nil {
			t.Fatal(err)
		}
	}
	runConsumer(t, c)
	select {
	case <-sink.stalled:
	case <-time.After(15 * time.Second):
		t.Fatal("the consumer did not start")
	}
	name := node.ConnectionNamed(t, "eventstream-bridge "+queue)
	close(sink.release)
	select {
	case <-sink.reached:
	case <-time.After(15 * time.Second):
		t.Fatalf("the consumer did not reach event %d", n/4)
	}
	atReset := len(sink.received())
	if !node.CloseConnection(name) {
		t.Fatal("the management API did not close the connection")
	}
	poll.Until(t, 60*time.Second, "every event consumed, the queue settled", func() bool {
		got := sink.received()
		return testutil.ToFloat64(m.Reconnects) >= 1 && len(got) >= n && got[len(got)-1] == want[n-1] &&
			c.Consuming() && queueReady(t, node.URI, queue) == 0
	})
	got := sink.received()
	if !slices.Equal(got, want) {
		dup := 0
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				dup++
			}
			seen[id] = true
		}
		t.Fatalf("the hub got %d events (%d duplicates), want e1..e%d once each in order", len(got), dup, n)
	}
	if testutil.ToFloat64(m.Redelivered) == 0 {
		t.Fatal("nothing redelivered: the reset did not hit the flow")
	}
	t.Logf("%d events once each; reset with %d handed off; %v redelivered, %v suppressed",
		n, atReset, testutil.ToFloat64(m.Redelivered), testutil.ToFloat64(m.RedeliveredSuppressed))
}
