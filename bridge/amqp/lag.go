package amqp

import (
	"context"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// sampleLag sets the lag gauge every LagInterval until ctx ends, on channels of its own (a
// failed passive declare closes its channel, never the consumer's).
//
// Classic and quorum: the queue's ready message count from a passive declare, i.e. messages
// the broker holds that have not been delivered to this bridge.
//
// Stream: a passive declare reports 0 messages for streams, so the sampler attaches a
// short-lived consumer at offset "last", which starts at the first message of the stream's
// last chunk, and reports that offset minus the last offset this bridge handled. The estimate
// is low by at most one chunk (RabbitMQ batches messages published together into a chunk) and
// exact when the bridge is caught up (0).
func (c *Consumer) sampleLag(ctx context.Context, conn *amqp091.Connection) {
	for {
		var (
			lag int64
			ok  bool
		)
		if c.cfg.QueueType == Stream {
			lag, ok = c.streamLag(ctx, conn)
		} else {
			lag, ok = c.queueLag(conn)
		}
		if ok {
			c.cfg.Metrics.Lag.Set(float64(lag))
		}
		if conn.IsClosed() {
			return // the session ends; the next one samples again
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.After(c.cfg.LagInterval):
		}
	}
}

func (c *Consumer) queueLag(conn *amqp091.Connection) (int64, bool) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, false
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(c.cfg.Queue, true, false, false, false, nil)
	if err != nil {
		return 0, false
	}
	return int64(q.Messages), true
}

func (c *Consumer) streamLag(ctx context.Context, conn *amqp091.Connection) (int64, bool) {
	handled := c.lastOffset.Load()
	tail, found, ok := c.streamTail(ctx, conn)
	if !ok {
		return 0, false
	}
	if lag := tail - handled; found && lag > 0 {
		return lag, true
	}
	return 0, true
}

// streamTail returns the offset of the first message of the stream's last chunk, read by a
// short-lived consumer at offset "last" on a channel of its own. found is false for an empty
// stream; ok is false when the broker could not be asked.
func (c *Consumer) streamTail(ctx context.Context, conn *amqp091.Connection) (tail int64, found, ok bool) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, false, false
	}
	defer ch.Close()
	if err := ch.Qos(1, 0, false); err != nil {
		return 0, false, false
	}
	tag := c.tag + "-tail"
	deliveries, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, amqp091.Table{"x-stream-offset": "last"})
	if err != nil {
		return 0, false, false
	}
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	select {
	case d, open := <-deliveries:
		if !open {
			return 0, false, false
		}
		_ = ch.Cancel(tag, false)
		tail, ok := streamOffset(d.Headers)
		return tail, ok, ok
	case <-timeout.C:
		return 0, false, true // an empty stream: nothing to deliver
	case <-ctx.Done():
		return 0, false, false
	}
}
