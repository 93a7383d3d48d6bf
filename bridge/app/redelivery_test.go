package app

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestConnectionResetDoesNotDuplicateEventsForClients: the broker closes the bridge's
// connection (classic and quorum) while an event was handed to the connected client and not yet
// acked; the broker delivers it again, with the ones after it. The client, connected
// throughout, receives every event exactly once and in order; the redelivery of what it already
// has is counted as suppressed.
func TestConnectionResetDoesNotDuplicateEventsForClients(t *testing.T) {
	for _, queueType := range []string{"classic", "quorum"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			testConnectionResetDoesNotDuplicate(t, queueType)
		})
	}
}

func testConnectionResetDoesNotDuplicate(t *testing.T, queueType string) {
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	const n, stallAt = 60, 25
	stalled := make(chan struct{})
	var deliveries atomic.Int64
	// The observer's end runs after the hub took a delivery and before it is acked: the
	// stallAt-th one waits there until its channel is closed, so it is handed off, never acked.
	observe := func(_ context.Context, d *amqp091.Delivery) func(string) {
		if deliveries.Add(1) != stallAt {
			return func(string) {}
		}
		return func(string) {
			closed := d.Acknowledger.(*amqp091.Channel).NotifyClose(make(chan *amqp091.Error, 1))
			close(stalled)
			<-closed
		}
	}
	b, err := startAdjusted(t, node.URI, func(c *Config) { c.Observe = observe },
		"--queue="+queue, "--exchange="+exchange, "--queue-type="+queueType, "--prefetch=100")
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "consuming", func() bool { return b.Consumer.Consuming() })
	c := connect(t, b, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "1", "1", 1, n)
	select {
	case <-stalled:
	case <-time.After(15 * time.Second):
		t.Fatal("the bridge did not reach the stalling event")
	}
	node.CloseConnectionsNamed(t, "eventstream-bridge "+queue)
	poll.Until(t, 20*time.Second, "a counted reconnect", func() bool { return testutil.ToFloat64(b.Metrics.Reconnects) >= 1 })
	publishEvents(t, p, "1", "1", n+1, n+1) // the last: after every redelivery
	got := c.take(n+1, 20*time.Second)
	for i, m := range got {
		if want := `"id":"e` + itoa(i+1) + `"`; m.Name != "message" || !strings.Contains(m.Data, want) {
			t.Fatalf("event %d: %s %s, want e1..e%d once each in order", i+1, m.Name, m.Data, n+1)
		}
	}
	redelivered, suppressed := testutil.ToFloat64(b.Metrics.Redelivered), testutil.ToFloat64(b.Metrics.RedeliveredSuppressed)
	if suppressed < 1 || suppressed > redelivered {
		t.Fatalf("suppressed %v of %v redelivered; want ≥ 1 (at least the stalled event)", suppressed, redelivered)
	}
	t.Logf("%d events once each; %v redelivered after the reset, %v suppressed", n+1, redelivered, suppressed)
}
