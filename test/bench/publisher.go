package bench

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Publisher sends benchmark events to the events exchange without confirms and without
// mandatory: a load generator, not a pattern for applications (docs/events.md). Any loss,
// returned or unconfirmed, shows in the bridge's consumed counter and the clients' counts,
// which fail the step.
type Publisher struct {
	conn     *amqp.Connection
	ch       *amqp.Channel
	exchange string
	body     []byte
}

// DialPublisher connects to url and opens a channel on exchange (which the bridge declared).
func DialPublisher(url, exchange string) (*Publisher, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("connect publisher: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open publisher channel: %w", err)
	}
	return &Publisher{conn: conn, ch: ch, exchange: exchange}, nil
}

// PublishOne sends event k for tenant, stamped now.
func (p *Publisher) PublishOne(ctx context.Context, k int64, tenant string) error {
	now := time.Now()
	p.body = AppendPayload(p.body[:0], k, tenant, now.UnixNano())
	return p.ch.PublishWithContext(ctx, p.exchange, RoutingKey(tenant), false, false, amqp.Publishing{
		ContentType: "application/json",
		Timestamp:   now,
		Body:        p.body,
	})
}

// PublishPaced sends total events at rate per second; event k goes to tenantOf(k). It returns
// how many were sent.
func (p *Publisher) PublishPaced(ctx context.Context, rate float64, total int64, tenantOf func(int64) string) (int64, error) {
	start := time.Now()
	for k := int64(0); k < total; {
		due := min(int64(time.Since(start).Seconds()*rate), total)
		if k >= due {
			time.Sleep(100 * time.Microsecond) // pacing
			continue
		}
		for ; k < due; k++ {
			if err := p.PublishOne(ctx, k, tenantOf(k)); err != nil {
				return k, fmt.Errorf("publish event %d: %w", k, err)
			}
		}
	}
	return total, nil
}

// Cleanup deletes the benchmark's queue, its dead-letter queue and exchange, and the exchange.
func (p *Publisher) Cleanup(queue string) {
	_, _ = p.ch.QueueDelete(queue, false, false, false)
	_, _ = p.ch.QueueDelete(contract.DeadLetterQueue(queue), false, false, false)
	_ = p.ch.ExchangeDelete(contract.DeadLetterExchange(queue), false, false)
	_ = p.ch.ExchangeDelete(p.exchange, false, false)
}

// Close closes the publisher's connection.
func (p *Publisher) Close() { _ = p.conn.Close() }

// WaitQueued waits until queue holds at least n messages (published without confirms, they
// reach the queue shortly after the publish calls returned).
func (p *Publisher) WaitQueued(ctx context.Context, queue string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		q, err := p.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("inspect queue %q: %w", queue, err)
		}
		if q.Messages >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("queue %q holds %d of %d messages after %s", queue, q.Messages, n, timeout)
		}
		time.Sleep(100 * time.Millisecond) // queue depth poll, bounded by the deadline
	}
}
