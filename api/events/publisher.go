package events

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TimestampMillisHeader carries the publish time in Unix milliseconds. The AMQP timestamp
// property has one-second resolution; the bridge prefers this header for its
// publish→delivery latency histogram (the name is the one RabbitMQ's message-timestamp
// plugin uses).
const TimestampMillisHeader = "timestamp_in_ms"

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Exchange is the topic exchange to publish to (default events.topic).
	Exchange string
	// HeaderInjector, when set, is called for every publish with the publish context and the
	// message headers, e.g. to add the W3C traceparent of the span in ctx.
	HeaderInjector func(ctx context.Context, headers amqp.Table)
	// Now returns the publish time (default time.Now); tests inject it.
	Now func() time.Time
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

// Publisher publishes events with publisher confirms: Publish returns only after the broker
// confirmed the message (stored, for durable queues), so a nil error means "the broker has it".
// Messages are persistent, carry a timestamp, content type application/json and a message id.
//
// A Publisher owns one channel in confirm mode and is safe for concurrent use. It does not
// reconnect: when its connection or channel closes every call fails, and the application
// creates a new Publisher.
type Publisher struct {
	cfg     PublisherConfig
	conn    *amqp.Connection // closed by Close when the Publisher dialled it
	ownConn bool
	ch      *amqp.Channel
	closeMu sync.Mutex
	closed  bool
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
		cfg.Exchange = "events.topic"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	return &Publisher{cfg: cfg, conn: conn, ch: ch}, nil
}

// PublishEvent validates ev, renders its routing key with t and publishes it, waiting for the
// broker's confirm. The message id is ev.ID unless opts sets one.
func (p *Publisher) PublishEvent(ctx context.Context, t *Template, ev Event, opts PublishOptions) error {
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

// Publish publishes body (JSON) with routingKey and waits for the broker's confirm or ctx.
func (p *Publisher) Publish(ctx context.Context, routingKey string, body []byte, opts PublishOptions) error {
	confirm, err := p.PublishDeferred(ctx, routingKey, body, opts)
	if err != nil {
		return err
	}
	return WaitConfirm(ctx, confirm)
}

// PublishDeferred publishes without waiting; the caller waits for the returned confirmation
// with WaitConfirm. Use it to keep several messages in flight (load generation).
func (p *Publisher) PublishDeferred(ctx context.Context, routingKey string, body []byte, opts PublishOptions) (*amqp.DeferredConfirmation, error) {
	now := p.cfg.Now()
	headers := amqp.Table{TimestampMillisHeader: now.UnixMilli()}
	if p.cfg.HeaderInjector != nil {
		p.cfg.HeaderInjector(ctx, headers)
	}
	for k, v := range opts.Headers {
		headers[k] = v
	}
	id := opts.MessageID
	if id == "" {
		id = NewID()
	}
	msg := amqp.Publishing{
		Headers:      headers,
		ContentType:  ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Timestamp:    now,
		Body:         body,
	}
	confirm, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.Exchange, routingKey, false, false, msg)
	if err != nil {
		return nil, fmt.Errorf("publish to exchange %q with routing key %q: %w", p.cfg.Exchange, routingKey, err)
	}
	return confirm, nil
}

// WaitConfirm waits for a deferred confirmation; a nack is ErrNacked.
func WaitConfirm(ctx context.Context, confirm *amqp.DeferredConfirmation) error {
	acked, err := confirm.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("wait for publisher confirm: %w", err)
	}
	if !acked {
		return fmt.Errorf("delivery tag %d: %w", confirm.DeliveryTag, ErrNacked)
	}
	return nil
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

// NewID returns a random 128-bit id in hex, for event and message ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
