package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// BenchmarkStreamDeadLetter publishes b.N malformed messages (confirmed) to a stream read by
// two bridge replicas and reports how fast the dead-letter leader copies them to the DLQ, one
// AMQP transaction per message (docs/reliability.md).
func BenchmarkStreamDeadLetter(b *testing.B) {
	node := rabbitmqtest.Shared(b)
	queue, exchange := "bench-dl-q-"+events.NewID()[:8], "bench-dl-x-"+events.NewID()[:8]
	b.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream"}
	startBridge(b, node.URI, args...)
	startBridge(b, node.URI, args...)
	p := publisher(b, node.URI, exchange)
	conn, err := amqp091.Dial(node.URI)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	dlq := func() int {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue+".dlq", true, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		return q.Messages
	}

	b.ResetTimer()
	start := time.Now()
	var confirms []*publish.Confirmation
	for i := 0; i < b.N; i++ {
		dc, err := p.PublishDeferred(context.Background(), "team.1.job.1.status", []byte(fmt.Sprintf("{broken %d", i)), publish.PublishOptions{})
		if err != nil {
			b.Fatal(err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		if err := publish.WaitConfirm(context.Background(), dc); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Minute); dlq() < b.N; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d in the DLQ", dlq(), b.N)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if n := dlq(); n != b.N {
		b.Fatalf("%d copies in the DLQ for %d malformed messages", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "dead-lettered/s")
}
