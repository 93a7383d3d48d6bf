package tracing

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	bridgeamqp "github.com/eventstream-operator/eventstream-operator/bridge/amqp"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// sinkChannel hands what the consumer publishes to the test.
type sinkChannel chan hub.Message

func (s sinkChannel) Publish(m hub.Message) (*hub.Frame, int) {
	s <- m
	return nil, 0
}

func (s sinkChannel) Advance(int64) {}

// TestBridgeConsumerContinuesThePublishersTrace runs the bridge's own consumer against the real
// broker with DeliveryObserver as its hook: a message published inside a span yields a consume
// span that is the publish span's child; a malformed message's span is marked as an error.
func TestBridgeConsumerContinuesThePublishersTrace(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	recorder := recordSpans(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := "tracing-consumer-" + events.NewID()[:12]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, name, name) })
	sink := make(sinkChannel, 4)
	consumer := bridgeamqp.New(bridgeamqp.Config{
		URL: node.URI, Exchange: name, Queue: name, QueueType: bridgeamqp.Classic,
		DeclareTopology: true, Template: events.MustParseTemplate(events.DefaultRoutingKeyTemplate),
		Observe: DeliveryObserver(name), Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New(),
	}, sink)
	consumerCtx, stopConsumer := context.WithCancel(ctx)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		_ = consumer.Run(consumerCtx)
	}()
	defer func() { stopConsumer(); <-consumerDone }()
	select {
	case <-consumer.Connected():
	case <-ctx.Done():
		t.Fatal("consumer did not connect within 30s")
	}

	publisher, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: name, HeaderInjector: Inject})
	if err != nil {
		t.Fatal(err)
	}
	defer publisher.Close()
	publishCtx, publishSpan := StartPublish(ctx, name, "team.42.job.7.status")
	if err := publisher.Publish(publishCtx, "team.42.job.7.status", []byte(`{"status":"done"}`), publish.PublishOptions{MessageID: "traced-1"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	publishSpan.End()
	if err := publisher.Publish(ctx, "team.42.job.7.status", []byte(`not json`), publish.PublishOptions{MessageID: "malformed-1"}); err != nil {
		t.Fatalf("publish malformed: %v", err)
	}
	select {
	case <-sink:
	case <-ctx.Done():
		t.Fatal("the consumer handed nothing to the hub within 30s")
	}
	poll.Until(t, 10*time.Second, "3 ended consume spans", func() bool { return len(recorder.Ended()) >= 3 })

	publish := endedSpan(t, recorder, "publish "+name)
	var delivered, malformed bool
	for _, span := range recorder.Ended() {
		if span.Name() != "process "+name {
			continue
		}
		attrs := map[string]string{}
		for _, kv := range span.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		switch attrs["messaging.message.id"] {
		case "traced-1":
			delivered = true
			if span.Parent().SpanID() != publish.SpanContext().SpanID() || span.SpanContext().TraceID() != publish.SpanContext().TraceID() {
				t.Fatalf("consume span parent %v, want the publish span %v", span.Parent(), publish.SpanContext())
			}
			if attrs["eventstream.delivery.outcome"] != "delivered" || span.Status().Code == codes.Error {
				t.Fatalf("delivered span: attrs %v status %v", attrs, span.Status())
			}
		case "malformed-1":
			malformed = true
			if span.Status().Code != codes.Error || attrs["eventstream.delivery.outcome"] != "malformed:"+bridgeamqp.ReasonNotJSON {
				t.Fatalf("malformed span: attrs %v status %v", attrs, span.Status())
			}
		}
	}
	if !delivered || !malformed {
		t.Fatalf("consume spans: delivered %v malformed %v", delivered, malformed)
	}
}

func TestDeliveryObserverIsNilWhenTracingIsOff(t *testing.T) {
	if DeliveryObserver("q") != nil {
		t.Fatal("DeliveryObserver returned a hook with tracing off")
	}
}
