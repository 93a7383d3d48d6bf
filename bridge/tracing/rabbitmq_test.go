package tracing

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestTraceContextSurvivesRabbitMQ publishes through the project's publisher with Inject as its
// header hook, consumes the message from a real broker and checks that the consume span's parent
// is the publish span.
func TestTraceContextSurvivesRabbitMQ(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	recorder := recordSpans(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := "tracing-test-" + events.NewID()[:12]
	conn, err := amqp.Dial(node.URI)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(name, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(name, "team.*.job.*.status", name, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(name, "", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	publisher, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: name, HeaderInjector: Inject})
	if err != nil {
		t.Fatal(err)
	}
	defer publisher.Close()
	publishCtx, publishSpan := StartPublish(ctx, name, "team.42.job.7.status")
	if err := publisher.Publish(publishCtx, "team.42.job.7.status", []byte(`{"status":"running"}`), publish.PublishOptions{}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	publishSpan.End()

	var delivery amqp.Delivery
	select {
	case delivery = <-deliveries:
	case <-ctx.Done():
		t.Fatal("no delivery within 30s")
	}
	_, consumeSpan := StartConsume(ctx, delivery.Headers, name, delivery.RoutingKey)
	_ = delivery.Ack(false)
	consumeSpan.End()

	publish := endedSpan(t, recorder, "publish "+name)
	consume := endedSpan(t, recorder, "process "+name)
	if consume.Parent().SpanID() != publish.SpanContext().SpanID() || consume.SpanContext().TraceID() != publish.SpanContext().TraceID() {
		t.Fatalf("consume span %v (parent %v) is not a child of publish span %v",
			consume.SpanContext(), consume.Parent(), publish.SpanContext())
	}
}
