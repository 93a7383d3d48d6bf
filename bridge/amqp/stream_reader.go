package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

// ErrNotConnected is returned by ReadStream while the consumer has no broker connection.
var ErrNotConnected = errors.New("not connected to the broker")

// readerSeq numbers stream readers for unique consumer tags.
var readerSeq atomic.Uint64

// ReadStream reads the stream queue from offset from on a channel of its own (on the
// consumer's current connection) and calls deliver for every valid message in offset order,
// until ctx ends, deliver returns an error, or the channel closes. Malformed messages are
// skipped (the dead-letter leader handles them). When the first message read, valid or not,
// is after from, the stream no longer holds from (retention): expired is called once before
// anything is delivered. deliver may block: the reader's prefetch bounds what the broker sends
// meanwhile. It serves clients resuming from before the hub's replay window, exactly, within
// the stream's retention.
func (c *Consumer) ReadStream(ctx context.Context, from int64, expired func(), deliver func(hub.Message) error) error {
	if c.cfg.QueueType != Stream {
		return errors.New("ReadStream needs a stream queue")
	}
	conn := c.conn.Load()
	if conn == nil || conn.IsClosed() {
		return ErrNotConnected
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open stream reader channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set stream reader prefetch: %w", err)
	}
	tag := fmt.Sprintf("%s-reader-%d", c.tag, readerSeq.Add(1))
	deliveries, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, amqp091.Table{"x-stream-offset": from})
	if err != nil {
		return fmt.Errorf("read stream %q from offset %d: %w", c.cfg.Queue, from, err)
	}
	first := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("stream reader channel closed")
			}
			offset, ok := streamOffset(d.Headers)
			if !ok {
				return errors.New("stream delivery without x-stream-offset header")
			}
			if first && offset > from {
				expired()
			}
			first = false
			if offset >= from {
				if values, reason := c.classify(&d); reason == "" {
					if err := deliver(hub.Message{RoutingKey: d.RoutingKey, Values: values, Data: d.Body, Offset: offset, Published: publishedAt(&d)}); err != nil {
						return err
					}
				}
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack stream reader delivery: %w", err)
			}
		}
	}
}
