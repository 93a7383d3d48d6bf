package amqp

import (
	"context"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// sampleLag sets the lag gauge every LagInterval until ctx ends, on a channel of its own (a
// failed passive declare closes its channel, never the consumer's).
//
// Classic and quorum: the queue's ready message count from a passive declare, i.e. messages
// the broker holds that have not been delivered to this bridge. Stream: a passive declare
// reports the stream's message count; the estimate is that count minus the messages up to
// the last offset this bridge handled (exact while the stream has not been truncated by
// retention, an over-estimate by the truncated count after).
func (c *Consumer) sampleLag(ctx context.Context, conn *amqp091.Connection) {
	var ch *amqp091.Channel
	defer func() {
		if ch != nil {
			_ = ch.Close()
		}
	}()
	for {
		if ch == nil || ch.IsClosed() {
			var err error
			if ch, err = conn.Channel(); err != nil {
				return // the connection is gone; the session ends and a new one samples again
			}
		}
		if q, err := ch.QueueDeclarePassive(c.cfg.Queue, true, false, false, false, nil); err == nil {
			lag := int64(q.Messages)
			if c.cfg.QueueType == Stream {
				lag -= c.lastOffset.Load() + 1
				if lag < 0 {
					lag = 0
				}
			}
			c.cfg.Metrics.Lag.Set(float64(lag))
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.After(c.cfg.LagInterval):
		}
	}
}
