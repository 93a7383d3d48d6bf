package publish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Exchange is the topic exchange to publish to (default events.topic).
	Exchange string
	// HeaderInjector, when set, is called for every publish with the publish context and the
	// message headers, e.g. to add the W3C traceparent of the span in ctx.
	HeaderInjector func(ctx context.Context, headers amqp.Table)
	// Now returns the publish time (default time.Now); tests inject it.
	Now func() time.Time
	// Retry governs what happens to a message the broker returns as unroutable; zero fields
	// take DefaultRetryPolicy's values.
	Retry RetryPolicy
}

// PublishOptions are per-message options.
type PublishOptions struct {
	// Headers are added to the message headers (after HeaderInjector ran, so they win).
	Headers amqp.Table
	// MessageID is the AMQP message-id; empty: a random id (PublishEvent uses the event id).
	MessageID string
}

// ErrNacked is returned when the broker negatively acknowledged a message: it was not stored.
var ErrNacked = errors.New("broker nacked the message")

// ErrUnroutable is returned when the broker returned a message (basic.return) on every attempt
// of the RetryPolicy: no queue took it, although the broker confirmed it. Either no queue is
// bound for its routing key, or the bound queue could not take it yet (RabbitMQ does that for a
// moment after a restart). The message is not stored.
var ErrUnroutable = errors.New("broker returned the message: no queue took it")

// Publisher publishes events with publisher confirms and the mandatory flag. A publish is done
// when the broker confirmed it and did not return it: only then does Publish return nil, and
// the message is in a queue (stored, for durable queues). A returned message is published
// again as the RetryPolicy says, then reported as ErrUnroutable; a nack is ErrNacked; a
// channel that closes before the confirm is amqp.ErrClosed. Messages are persistent, carry a
// timestamp, content type application/json, a message id and PublishIDHeader.
//
// A Publisher owns one channel in confirm mode and is safe for concurrent use. It does not
// reconnect: when its connection or channel closes every call fails, and the application
// creates a new Publisher.
type Publisher struct {
	cfg       PublisherConfig
	conn      *amqp.Connection // closed by Close when the Publisher dialled it
	ownConn   bool
	ch        *amqp.Channel
	returns   *returnTracker
	publishID atomic.Uint64
	closeMu   sync.Mutex
	closed    bool
}

// Dial connects to url (amqp:// or amqps://; tlsConfig may be nil) and returns a Publisher
// that owns the connection.
func Dial(url string, tlsConfig *tls.Config, cfg PublisherConfig) (*Publisher, error) {
	var (
		conn *amqp.Connection
		err  error
	)
	if tlsConfig != nil {
		conn, err = amqp.DialTLS(url, tlsConfig)
	} else {
		conn, err = amqp.Dial(url)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ: %w", redactURL(err, url))
	}
	p, err := NewPublisher(conn, cfg)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	p.ownConn = true
	return p, nil
}

// NewPublisher opens a confirm-mode channel on conn. Closing the Publisher closes only that
// channel.
func NewPublisher(conn *amqp.Connection, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Exchange == "" {
		cfg.Exchange = events.DefaultExchange
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	retry, err := cfg.Retry.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Retry = retry
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	return &Publisher{cfg: cfg, conn: conn, ch: ch, returns: newReturnTracker(ch)}, nil
}

// PublishEvent validates ev, renders its routing key with t and publishes it, waiting for the
// broker's confirm. The message id is ev.ID unless opts sets one.
func (p *Publisher) PublishEvent(ctx context.Context, t *events.Template, ev events.Event, opts PublishOptions) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("invalid event: %w", err)
	}
	key, err := ev.RoutingKey(t)
	if err != nil {
		return err
	}
	body, err := ev.Marshal()
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if opts.MessageID == "" {
		opts.MessageID = ev.ID
	}
	return p.Publish(ctx, key, body, opts)
}

// Publish publishes body (JSON) with routingKey and waits until the publish is done
// (confirmed and not returned, retrying returned messages) or failed, or ctx ends.
func (p *Publisher) Publish(ctx context.Context, routingKey string, body []byte, opts PublishOptions) error {
	confirm, err := p.PublishDeferred(ctx, routingKey, body, opts)
	if err != nil {
		return err
	}
	return confirm.Wait(ctx)
}

// PublishDeferred publishes without waiting; the caller waits for the returned Confirmation
// (Wait or WaitConfirm) to learn whether the publish is done. Use it to keep several messages
// in flight (load generation). A retried message is published again when its Confirmation is
// waited for, so it may land after messages published later.
func (p *Publisher) PublishDeferred(ctx context.Context, routingKey string, body []byte, opts PublishOptions) (*Confirmation, error) {
	now := p.cfg.Now()
	headers := amqp.Table{events.TimestampMillisHeader: now.UnixMilli()}
	if p.cfg.HeaderInjector != nil {
		p.cfg.HeaderInjector(ctx, headers)
	}
	for k, v := range opts.Headers {
		headers[k] = v
	}
	id := opts.MessageID
	if id == "" {
		id = events.NewID()
	}
	c := &Confirmation{p: p, routingKey: routingKey, msg: amqp.Publishing{
		Headers:      headers,
		ContentType:  events.ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Timestamp:    now,
		Body:         body,
	}}
	if err := c.publish(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Returned counts the messages the broker returned to this Publisher (every returned attempt).
func (p *Publisher) Returned() uint64 { return p.returns.count.Load() }

// Confirmation is one message in flight on a Publisher. Wait tells its outcome; it must be
// called once, from one goroutine (the bookkeeping of a returned message is freed by Wait).
type Confirmation struct {
	p          *Publisher
	routingKey string
	msg        amqp.Publishing
	attempt    int    // publishes so far
	publishID  string // PublishIDHeader of the latest attempt
	deferred   *amqp.DeferredConfirmation
}

// publish sends the next attempt of c's message with mandatory set.
func (c *Confirmation) publish(ctx context.Context) error {
	c.attempt++
	c.publishID = strconv.FormatUint(c.p.publishID.Add(1), 10)
	c.msg.Headers[PublishIDHeader] = c.publishID
	dc, err := c.p.ch.PublishWithDeferredConfirmWithContext(ctx, c.p.cfg.Exchange, c.routingKey, true, false, c.msg)
	if err != nil {
		return fmt.Errorf("publish to exchange %q with routing key %q: %w", c.p.cfg.Exchange, c.routingKey, err)
	}
	c.deferred = dc
	return nil
}

// Wait waits until the publish is done: nil when the broker confirmed the message and did not
// return it. A returned message is published again after a pause, as the Publisher's
// RetryPolicy says, and reported as ErrUnroutable when every attempt was returned. A nack is
// ErrNacked, a channel closed before the confirm amqp.ErrClosed, and ctx ending its error.
func (c *Confirmation) Wait(ctx context.Context) error {
	retry := c.p.cfg.Retry
	for {
		acked, err := c.deferred.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("wait for publisher confirm: %w", err)
		}
		returned, wasReturned := c.p.returns.take(c.publishID)
		switch {
		case !acked && c.p.ch.IsClosed():
			return fmt.Errorf("publish to exchange %q with routing key %q: channel closed before the confirm: %w",
				c.p.cfg.Exchange, c.routingKey, amqp.ErrClosed)
		case !acked:
			return fmt.Errorf("publish to exchange %q with routing key %q: delivery tag %d: %w",
				c.p.cfg.Exchange, c.routingKey, c.deferred.DeliveryTag, ErrNacked)
		case !wasReturned:
			return nil
		case c.attempt >= retry.Attempts:
			return fmt.Errorf("publish to exchange %q with routing key %q: returned (%d %s) %d times: %w",
				c.p.cfg.Exchange, c.routingKey, returned.ReplyCode, returned.ReplyText, c.attempt, ErrUnroutable)
		}
		// The pause counts from the return, so confirmations waited for one after another
		// (a window of PublishDeferred) do not add up their pauses.
		if err := sleepContext(ctx, retry.backoff(c.attempt)-time.Since(returned.at)); err != nil {
			return fmt.Errorf("publish to exchange %q with routing key %q: returned, retry cancelled: %w",
				c.p.cfg.Exchange, c.routingKey, err)
		}
		if err := c.publish(ctx); err != nil {
			return err
		}
	}
}

// WaitConfirm is confirm.Wait(ctx).
func WaitConfirm(ctx context.Context, confirm *Confirmation) error {
	return confirm.Wait(ctx)
}

// Close closes the channel, and the connection when Dial created it. It is idempotent.
func (p *Publisher) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.ch.Close()
	if p.ownConn {
		err = errors.Join(err, p.conn.Close())
	}
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

// redactURL keeps credentials of url out of an error message (amqp091 errors do not include
// the URL today; this guards against that changing).
func redactURL(err error, url string) error {
	if err == nil {
		return nil
	}
	if u, parseErr := amqp.ParseURI(url); parseErr == nil && u.Password != "" {
		if msg := err.Error(); strings.Contains(msg, u.Password) {
			return errors.New("dial failed (message withheld: it contained credentials)")
		}
	}
	return err
}
