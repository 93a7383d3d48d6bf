package amqp

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

func TestBackoffIsJitteredExponentialAndCapped(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return 0 }}
	want := []time.Duration{50, 100, 200, 400, 500, 500} // lower bound: d/2
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Errorf("Delay(%d) with rand 0 = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Rand = func() float64 { return 0.999999 }
	if got := b.Delay(10); got >= time.Second || got < 999*time.Millisecond {
		t.Errorf("Delay(10) with rand→1 = %v, want just under the 1s cap", got)
	}
	// The default cap keeps the bridge within 1 s of a broker that is back (issue 14).
	if got := (Backoff{}).Delay(100); got > time.Second || got < 500*time.Millisecond {
		t.Errorf("default cap: %v, want in [500ms, 1s)", got)
	}
}

// blockingSink holds every Publish until released, so messages stay unacked.
type blockingSink struct{ release chan struct{} }

func (s blockingSink) Publish(hub.Message) (*hub.Frame, int) {
	<-s.release
	return nil, 0
}

func (s blockingSink) Advance(int64) {}

// TestConsumerLag checks the lag gauge on a real broker for classic and stream queues: while
// the bridge is stuck on one message the backlog shows, and it returns to 0 once it catches up.
func TestConsumerLag(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	for _, qt := range []QueueType{Classic, Stream} {
		t.Run(string(qt), func(t *testing.T) {
			t.Parallel()
			m := metrics.New()
			sink := blockingSink{release: make(chan struct{})}
			c, p, _ := startConsumer(t, node, Config{
				Queue: "lag-" + string(qt) + "-" + events.NewID()[:8], QueueType: qt, Prefetch: 1,
				LagInterval: 50 * time.Millisecond, Metrics: m,
			}, sink)
			for i := 0; i < 30; i++ {
				if err := p.Publish(context.Background(), "team.1.job."+strconv.Itoa(i)+".status", []byte(`{}`), publish.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			poll.Until(t, 15*time.Second, "lag ≥ 20 while stuck", func() bool { return testutil.ToFloat64(m.Lag) >= 20 })
			close(sink.release)
			poll.Until(t, 15*time.Second, "lag 0 after catching up", func() bool {
				return testutil.ToFloat64(m.Lag) == 0 && testutil.ToFloat64(m.Consumed) == 30
			})
			if qt == Stream && c.lastOffset.Load() < 29 {
				t.Errorf("last stream offset %d", c.lastOffset.Load())
			}
		})
	}
}

// countingSink counts published messages.
type countingSink struct{ n chan struct{} }

func (s countingSink) Publish(hub.Message) (*hub.Frame, int) {
	s.n <- struct{}{}
	return nil, 0
}

func (s countingSink) Advance(int64) {}

// TestRedeliveriesAreCounted: messages a previous consumer received but did not ack (a bridge
// that stopped or lost its connection) come back from the queue; the bridge counts them as
// redelivered, since clients may already have them.
func TestRedeliveriesAreCounted(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	queue := "redelivered-" + events.NewID()[:8]
	exchange := queue + "-x"
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	m := metrics.New()
	seen := countingSink{n: make(chan struct{}, 10)}
	c := New(Config{
		URL: node.URI, Exchange: exchange, Queue: queue, QueueType: Classic, DeclareTopology: true, Prefetch: 10,
		Template: events.MustParseTemplate(events.DefaultRoutingKeyTemplate),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
	}, seen)
	stop := runConsumer(t, c)
	waitConnected(t, c)
	stop() // the bridge declared the topology; stop it while a "previous bridge" takes over

	conn, err := amqp091.Dial(node.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	p, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 5; i++ {
		if err := p.Publish(context.Background(), "team.1.job.1.status", []byte(`{}`), publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ { // the previous bridge receives them and stops without acking
		if _, ok, err := ch.Get(queue, false); err != nil || !ok {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
	}
	_ = ch.Close()

	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		_ = c.Run(ctx2)
	}()
	defer func() { cancel2(); <-done2 }()
	poll.Until(t, 15*time.Second, "the 5 returned messages consumed", func() bool { return len(seen.n) == 5 })
	if r := testutil.ToFloat64(m.Redelivered); r != 5 {
		t.Fatalf("redelivered = %v, want 5", r)
	}
}

// TestHandedOffBatchIsAcked (issue 13): deliveries handed to the hub are acked in batches, the
// last batch of a burst once no more arrive (ackDelay), so a burst smaller than the batch size
// does not stay unacknowledged at the broker.
func TestHandedOffBatchIsAcked(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	queue := "acked-" + events.NewID()[:8]
	seen := countingSink{n: make(chan struct{}, 50)}
	_, p, _ := startConsumer(t, node, Config{Queue: queue, QueueType: Classic, Prefetch: 1000, Metrics: metrics.New()}, seen)
	for i := 0; i < 50; i++ { // fewer than ackBatchSize(1000): only the delay acks them
		if err := p.Publish(context.Background(), "team.1.job.1.status", []byte(`{}`), publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 15*time.Second, "the 50 messages handed to the hub", func() bool { return len(seen.n) == 50 })
	var q rabbitmqtest.QueueStats
	poll.Until(t, 30*time.Second, "the broker to report all 50 acked and none unacknowledged", func() bool {
		var ok bool
		q, ok = node.Queue(queue)
		return ok && q.MessageStats.Ack == 50 && q.Unacked == 0 && q.Ready == 0
	})
}

// TestStopAcksWhatWasHandedOff (issue 13): a consumer stopped while a batch handed to the hub
// waits for its ack (ackDelay) acks it before it closes the channel, so the broker does not
// deliver those messages again to the next bridge.
func TestStopAcksWhatWasHandedOff(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	queue := "stop-acked-" + events.NewID()[:8]
	seen := countingSink{n: make(chan struct{}, 50)}
	_, p, stop := startConsumer(t, node, Config{Queue: queue, QueueType: Classic, Prefetch: 1000, Metrics: metrics.New()}, seen)
	for i := 0; i < 50; i++ {
		if err := p.Publish(context.Background(), "team.1.job.1.status", []byte(`{}`), publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		select {
		case <-seen.n:
		case <-time.After(15 * time.Second):
			t.Fatalf("%d of 50 messages handed to the hub", i)
		}
	}
	stop() // well within ackDelay of the last hand-off
	if n := queueReady(t, node.URI, queue); n != 0 {
		t.Fatalf("%d handed-off messages went back to the queue when the consumer stopped", n)
	}
}

// startConsumer runs a consumer of cfg.Queue (a fresh name) on node that declares its own
// topology, with the exchange cfg.Queue+"-x", the default template and a discarding logger
// unless cfg sets them, until the test ends or stop is called; it returns the consumer,
// connected, and a publisher to the exchange. The topology is deleted with the test.
func startConsumer(t *testing.T, node *rabbitmqtest.Node, cfg Config, sink Sink) (c *Consumer, p *publish.Publisher, stop func()) {
	t.Helper()
	cfg.URL, cfg.Exchange, cfg.DeclareTopology = node.URI, cfg.Queue+"-x", true
	if cfg.Template == nil {
		cfg.Template = events.MustParseTemplate(events.DefaultRoutingKeyTemplate)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c = New(cfg, sink)
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, cfg.Queue, cfg.Exchange) })
	stop = runConsumer(t, c)
	waitConnected(t, c)
	p, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: cfg.Exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return c, p, stop
}

// queueReady is the ready messages of queue, -1 when it does not exist.
func queueReady(t *testing.T, uri, queue string) int {
	t.Helper()
	if n, ok := rabbitmqtest.QueueMessages(t, uri, queue); ok {
		return n
	}
	return -1
}

// runConsumer runs c until the test ends or stop is called; stop returns once Run returned.
func runConsumer(t *testing.T, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// waitConnected fails the test unless c's first session starts within 10 s.
func waitConnected(t *testing.T, c *Consumer) {
	t.Helper()
	select {
	case <-c.Connected():
	case <-time.After(10 * time.Second):
		t.Fatal("consumer did not connect")
	}
}
