package apps

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/apptest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// declareExchange declares a topic exchange as the operator does and, when bindingKey is not
// empty, a queue bound to it; both are removed when the test ends.
func declareExchange(t *testing.T, uri, bindingKey string) (exchange, queue string, ch *amqp091.Channel) {
	t.Helper()
	exchange, queue = "apps-x-"+events.NewID()[:8], "apps-q-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(uri, queue, exchange) })
	ch = rabbitmqtest.Channel(t, uri)
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if bindingKey != "" {
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(queue, bindingKey, exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	return exchange, queue, ch
}

// TestPythonPublishersFollowTheEventContract: what the Celery and aio-pika examples publish is
// the contract of docs/events.md as the Go side (api/events) reads it: a valid Event under the
// routing key of the default template, persistent JSON with message_id = id and a timestamp.
func TestPythonPublishersFollowTheEventContract(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	exchange, queue, ch := declareExchange(t, node.URI, "team.*.job.*.status")
	env := apptest.PythonEnv(t, node.URI, exchange)
	apptest.PublishWithAioPika(t, env, "42", "7", "queued", 0, "from aio-pika")
	if out, err := apptest.PublishWithCelery(env, "42", "7", "running", 40, "from celery"); err != nil {
		t.Fatalf("celery publish_status: %v\n%s", err, out)
	}

	tmpl := events.MustParseTemplate(events.DefaultRoutingKeyTemplate)
	for i, want := range []struct{ status, message string }{{"queued", "from aio-pika"}, {"running", "from celery"}} {
		d, ok, err := ch.Get(queue, true)
		if err != nil || !ok {
			t.Fatalf("message %d: ok %v, err %v", i+1, ok, err)
		}
		var e events.Event
		if err := json.Unmarshal(d.Body, &e); err != nil {
			t.Fatalf("message %d is not an Event: %v: %s", i+1, err, d.Body)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("message %d: %v: %s", i+1, err, d.Body)
		}
		key, err := e.RoutingKey(tmpl)
		if err != nil || key != d.RoutingKey {
			t.Fatalf("message %d: routing key %q, the template gives %q (%v)", i+1, d.RoutingKey, key, err)
		}
		if e.Type != "job.status" || e.Status != want.status || e.Message != want.message || e.TeamID != "42" || e.JobID != "7" {
			t.Fatalf("message %d: %+v", i+1, e)
		}
		if d.ContentType != events.ContentType || d.DeliveryMode != amqp091.Persistent || d.MessageId != e.ID {
			t.Fatalf("message %d: content type %q, delivery mode %d, message id %q (event id %q)", i+1, d.ContentType, d.DeliveryMode, d.MessageId, e.ID)
		}
		if age := time.Since(d.Timestamp); age < -time.Minute || age > time.Minute {
			t.Fatalf("message %d: timestamp %v", i+1, d.Timestamp)
		}
	}
}

// TestPythonPublishersReportUnroutedEvents: publishing where no queue is bound, the broker
// confirms and returns the message; both examples report it as not published (NotRouted).
func TestPythonPublishersReportUnroutedEvents(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	exchange, _, _ := declareExchange(t, node.URI, "")
	env := apptest.PythonEnv(t, node.URI, exchange)

	out, err := apptest.PythonCommand(env, "publisher.py", "42", "7", "queued", "0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NotRouted") {
		t.Fatalf("aio-pika publisher without a bound queue: err %v, output:\n%s", err, out)
	}
	out, err = apptest.PublishWithCelery(env, "42", "7", "running", 40, "from celery")
	if err == nil || !strings.Contains(string(out), "NotRouted") {
		t.Fatalf("celery publish_status without a bound queue: err %v, output:\n%s", err, out)
	}
}
