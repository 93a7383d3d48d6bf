package publish

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// declareExchange declares an auto-delete topic exchange and, when bindingKey is set, an
// exclusive queue bound to it with that key; both vanish with conn.
func declareExchange(t *testing.T, ch *amqp.Channel, bindingKey string) (exchange, queue string) {
	t.Helper()
	exchange, queue = "events-test-ret-"+events.NewID()[:8], "events-test-ret-"+events.NewID()[:8]
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if bindingKey != "" {
		if err := ch.QueueBind(queue, bindingKey, exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	return exchange, queue
}

// TestPublishUnroutableIsReported: the broker confirms a message that no queue took; the
// publisher must not call that published. It retries as its policy says and reports
// ErrUnroutable (before mandatory publishing, Publish returned nil and the event was lost).
func TestPublishUnroutableIsReported(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	ch := rabbitmqtest.Channel(t, node.URI)
	exchange, _ := declareExchange(t, ch, "") // no binding at all

	pub, err := Dial(node.URI, nil, PublisherConfig{Exchange: exchange,
		Retry: RetryPolicy{Attempts: 3, InitialBackoff: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev := events.Event{ID: "evt-unroutable", Type: "job.status", TeamID: "42", JobID: "7", Status: "running", Time: fixedTime}
	err = pub.PublishEvent(ctx, events.MustParseTemplate(events.DefaultRoutingKeyTemplate), ev, PublishOptions{})
	if !errors.Is(err, ErrUnroutable) {
		t.Fatalf("publish to an exchange without a binding: err = %v, want ErrUnroutable", err)
	}
	if got := pub.Returned(); got != 3 {
		t.Fatalf("returned %d times, want 3 (the policy's attempts)", got)
	}
	t.Logf("error: %v", err)
}

// TestPublishReturnedIsRetriedUntilRouted: a message returned while its queue is not bound
// yet is published again and done once the binding exists; it arrives in the queue once.
func TestPublishReturnedIsRetriedUntilRouted(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	ch := rabbitmqtest.Channel(t, node.URI)
	exchange, queue := declareExchange(t, ch, "")

	pub, err := Dial(node.URI, nil, PublisherConfig{Exchange: exchange,
		Retry: RetryPolicy{Attempts: 1000, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	confirm, err := pub.PublishDeferred(ctx, "team.1.job.1.status", []byte(`{"id":"late"}`), PublishOptions{MessageID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- confirm.Wait(ctx) }()
	poll.Until(t, 10*time.Second, "the first return", func() bool { return pub.Returned() >= 1 })
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while no queue was bound", err)
	default:
	}
	if err := ch.QueueBind(queue, "team.*.job.*.status", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after binding the queue: %v", err)
	}
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok || d.MessageId != "late" {
		t.Fatalf("get: ok=%v err=%v id=%q", ok, err, d.MessageId)
	}
	if _, ok, _ := ch.Get(queue, true); ok {
		t.Fatal("the message arrived twice")
	}
	t.Logf("returned %d times before the binding existed", pub.Returned())
}

// TestPublishReturnsMatchTheirPublish keeps routed and unroutable messages with the same
// message id in flight together: each outcome belongs to its own publish, not to another one
// with the same id.
func TestPublishReturnsMatchTheirPublish(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	ch := rabbitmqtest.Channel(t, node.URI)
	exchange, queue := declareExchange(t, ch, "team.*.job.routed.status")

	pub, err := Dial(node.URI, nil, PublisherConfig{Exchange: exchange, Retry: RetryPolicy{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 200
	confirms := make([]*Confirmation, n)
	for i := range confirms {
		job := "routed"
		if i%3 == 0 {
			job = "nowhere"
		}
		confirms[i], err = pub.PublishDeferred(ctx, fmt.Sprintf("team.1.job.%s.status", job), []byte(`{}`), PublishOptions{MessageID: "same-id"})
		if err != nil {
			t.Fatal(err)
		}
	}
	routed := 0
	for i, c := range confirms {
		err := c.Wait(ctx)
		switch {
		case i%3 == 0 && !errors.Is(err, ErrUnroutable):
			t.Fatalf("publish %d (unroutable): err = %v", i, err)
		case i%3 != 0 && err != nil:
			t.Fatalf("publish %d (routed): err = %v", i, err)
		case i%3 != 0:
			routed++
		}
	}
	q, err := ch.QueueDeclarePassive(queue, false, true, true, false, nil)
	if err != nil || q.Messages != routed {
		t.Fatalf("queue holds %d messages (%v), want %d", q.Messages, err, routed)
	}
	if want := uint64(n - routed); pub.Returned() != want {
		t.Fatalf("returned %d, want %d", pub.Returned(), want)
	}
}

// TestPublishReturnRetryStopsWithContext: a cancelled context ends the pause between retries.
func TestPublishReturnRetryStopsWithContext(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	ch := rabbitmqtest.Channel(t, node.URI)
	exchange, _ := declareExchange(t, ch, "")
	pub, err := Dial(node.URI, nil, PublisherConfig{Exchange: exchange,
		Retry: RetryPolicy{Attempts: 5, InitialBackoff: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if !poll.Within(context.Background(), 10*time.Second, poll.Interval, func() bool { return pub.Returned() >= 1 }) {
			t.Error("timed out after 10s waiting for the first return")
		}
		cancel()
	}()
	err = pub.Publish(ctx, "team.1.job.1.status", []byte(`{}`), PublishOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestRetryPolicyBackoff(t *testing.T) {
	r, err := RetryPolicy{Attempts: 9, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for retry := 1; retry <= 6; retry++ {
		got = append(got, r.backoff(retry))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
	if d, _ := (RetryPolicy{}).withDefaults(); d != DefaultRetryPolicy {
		t.Fatalf("zero policy = %+v, want the default", d)
	}
	if _, err := (RetryPolicy{Attempts: -1}).withDefaults(); err == nil {
		t.Fatal("negative attempts accepted")
	}
}

// TestPublishReturnPausesDoNotAddUp: a window of messages returned together is retried after
// one pause, not one pause per message waited for in turn (50 × 300 ms before).
func TestPublishReturnPausesDoNotAddUp(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	ch := rabbitmqtest.Channel(t, node.URI)
	exchange, _ := declareExchange(t, ch, "")
	pub, err := Dial(node.URI, nil, PublisherConfig{Exchange: exchange,
		Retry: RetryPolicy{Attempts: 2, InitialBackoff: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 50
	confirms := make([]*Confirmation, n)
	for i := range confirms {
		if confirms[i], err = pub.PublishDeferred(ctx, "team.1.job.1.status", []byte(`{}`), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for i, c := range confirms {
		if err := c.Wait(ctx); !errors.Is(err, ErrUnroutable) {
			t.Fatalf("message %d: err = %v", i, err)
		}
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("waiting for %d returned messages took %v: the pauses added up", n, elapsed)
	} else {
		t.Logf("%d returned messages retried and reported in %v", n, elapsed.Round(time.Millisecond))
	}
}
