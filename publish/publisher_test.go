package publish

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// TestPublisherAgainstRabbitMQ publishes an event with confirms to a real broker and reads it
// back: routing key, persistent delivery, content type, message id, timestamps, injected
// headers and the JSON contract.
func TestPublisherAgainstRabbitMQ(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	exchange, queue := "events-test-pub-"+events.NewID()[:8], "events-test-pub-"+events.NewID()[:8]
	conn, err := amqp.Dial(node.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, true, true, false, nil); err != nil { // exclusive: gone with the connection
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "team.*.job.*.status", exchange, false, nil); err != nil {
		t.Fatal(err)
	}

	pub, err := Dial(node.URI, nil, PublisherConfig{
		Exchange: exchange,
		Now:      func() time.Time { return fixedTime },
		HeaderInjector: func(ctx context.Context, h amqp.Table) {
			h["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ev := events.Event{ID: "evt-1", Type: "job.status", TeamID: "42", JobID: "7", Status: "running", Progress: 30, Message: "line1\nline2", Time: fixedTime}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.PublishEvent(ctx, events.MustParseTemplate(events.DefaultRoutingKeyTemplate), ev, PublishOptions{Headers: amqp.Table{"x-extra": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishEvent(ctx, events.MustParseTemplate(events.DefaultRoutingKeyTemplate), events.Event{}, PublishOptions{}); err == nil {
		t.Fatal("publishing an invalid event: want error")
	}

	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if d.RoutingKey != "team.42.job.7.status" || d.DeliveryMode != amqp.Persistent || d.ContentType != events.ContentType || d.MessageId != "evt-1" {
		t.Errorf("delivery key=%q mode=%d type=%q id=%q", d.RoutingKey, d.DeliveryMode, d.ContentType, d.MessageId)
	}
	if !d.Timestamp.Equal(fixedTime.Truncate(time.Second)) {
		t.Errorf("timestamp = %v", d.Timestamp)
	}
	if d.Headers[events.TimestampMillisHeader] != fixedTime.UnixMilli() || d.Headers["traceparent"] == nil || d.Headers["x-extra"] != "1" {
		t.Errorf("headers = %v", d.Headers)
	}
	var got events.Event
	if err := json.Unmarshal(d.Body, &got); err != nil || got != ev {
		t.Errorf("body = %s (%v), want %+v", d.Body, err, ev)
	}
}
