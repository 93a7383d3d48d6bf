package amqp

import (
	"context"
	"encoding/json"
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
// until ctx ends, deliver returns an error, or the channel closes. Messages the consumer would
// dead-letter are skipped (the consumer already dead-letters them). deliver may block: the
// reader's prefetch bounds what the broker sends meanwhile. It serves clients resuming from
// before the hub's replay window, exactly, within the stream's retention.
func (c *Consumer) ReadStream(ctx context.Context, from int64, deliver func(hub.Message) error) error {
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
			if offset >= from && len(d.Body) <= c.cfg.MaxMessageBytes && json.Valid(d.Body) {
				if values, ok := c.cfg.Template.Match(d.RoutingKey); ok {
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
