// Package amqp consumes the EventStream's queue and hands valid events to the hub.
//
// The Consumer owns the broker connection: it reconnects by itself with jittered, capped
// exponential backoff (amqp091-go does not), re-establishing channel, QoS and consumer, and
// reports readiness. A delivery is acked only after the hub handed it to every matching
// subscriber; malformed messages are dead-lettered (stream mode: exactly once over all
// replicas, deadletter.go), counted and logged, never fatal.
package amqp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Malformed-message reasons (label values of the malformed metric).
const (
	ReasonNotJSON    = "not_json"
	ReasonRoutingKey = "routing_key"
	ReasonOversize   = "oversize"
)

// Connection defaults (see Config.Heartbeat and Config.DialTimeout).
const (
	DefaultHeartbeat   = 2 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// MalformedReasonHeader is set on messages the bridge republishes to the dead-letter exchange
// (stream mode).
const MalformedReasonHeader = "x-eventstream-malformed-reason"

// Sink receives valid events; *hub.Hub implements it.
type Sink interface {
	Publish(hub.Message) (*hub.Frame, int)
	// Advance tells the sink a stream offset was consumed without an event (malformed).
	Advance(offset int64)
}

// DeliveryObserver is called for every delivery before it is handled and returns a function
// called with the outcome ("delivered", "malformed:<reason>", "error"). The tracing package
// uses it to start a span continuing the message's traceparent. Nil: no cost.
type DeliveryObserver func(ctx context.Context, d *amqp091.Delivery) (end func(outcome string))

// Config configures a Consumer.
type Config struct {
	// URL is the AMQP URI with credentials; it is never logged.
	URL string
	// TLS, when set, is used for amqps:// URLs.
	TLS *tls.Config
	// Exchange, Queue, QueueType, BindingKey describe the topology.
	Exchange   string
	Queue      string
	QueueType  QueueType
	BindingKey string
	// DeclareTopology makes the consumer declare the topology itself (see declareTopology).
	DeclareTopology bool
	// DeadLetterExchange receives malformed messages; default "<queue>.dlx".
	DeadLetterExchange string
	// Prefetch is the QoS prefetch count (1..65535).
	Prefetch int
	// MaxMessageBytes rejects larger bodies as oversize.
	MaxMessageBytes int
	// Template matches routing keys; non-matching keys are malformed.
	Template *events.Template
	// StreamReplay is how many messages before the stream's tail a stream consumer re-reads
	// at start-up to fill the replay ring (the bridge passes its replay size); 0: start at
	// "next".
	StreamReplay int
	// StreamFromFirst makes a stream consumer read the whole stream at start-up, from its first
	// retained message (the snapshot store is rebuilt from it); it is not ready before it read up
	// to the tail it found then.
	StreamFromFirst bool
	// LagInterval is how often consumer lag is sampled; default 5s.
	LagInterval time.Duration
	// Backoff shapes reconnect delays.
	Backoff Backoff
	// Heartbeat is the AMQP heartbeat proposed to the broker; default DefaultHeartbeat. A
	// heartbeat parameter in URL wins. amqp091-go declares the connection dead when nothing
	// arrived for 1.5 heartbeats (3 s at the default), so a blackholed broker is noticed
	// within about 3 s; the broker drops a silent bridge after 2 missed heartbeats.
	Heartbeat time.Duration
	// LeaderRetry is how often a stream replica that is not the dead-letter leader tries to
	// become it; default DefaultLeaderRetry. ProgressInterval is how often the leader records
	// how far it examined the stream; default DefaultProgressInterval (deadletter.go).
	LeaderRetry      time.Duration
	ProgressInterval time.Duration
	// DialTimeout bounds the TCP connect and the AMQP handshake; default DefaultDialTimeout.
	DialTimeout time.Duration
	// After is the clock for backoff waits and lag sampling; default time.After.
	After func(time.Duration) <-chan time.Time
	// Observe, when set, is called for every delivery (tracing).
	Observe DeliveryObserver

	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

// Consumer consumes one queue. Create it with New and run it with Run.
type Consumer struct {
	cfg  Config
	sink Sink
	tag  string

	ready     atomic.Bool
	connected chan struct{} // closed at the first successful consume
	once      sync.Once

	// lastOffset is the last stream offset handled (stream mode), -1 before the first.
	lastOffset atomic.Int64
	// startupTail is the stream tail found at start-up (-1: none); the consumer is not ready
	// before it re-read up to there, so clients routed to it do not get the replayed history
	// as if it were new.
	startupTail atomic.Int64
	// startupKnown is set once the first session found where the stream ended at start-up.
	startupKnown atomic.Bool
	// conn is the current session's connection (nil between sessions), for stream readers.
	conn atomic.Pointer[amqp091.Connection]
	// redeliveries suppresses the redeliveries of events already handed off (classic and
	// quorum; nil for streams, whose offsets de-duplicate). Run's goroutine only.
	redeliveries *redeliveryFilter

	logLimiter malformedLogLimiter
}

// New returns a consumer feeding sink. cfg.Template, Logger and Metrics are required.
func New(cfg Config, sink Sink) *Consumer {
	if cfg.DeadLetterExchange == "" {
		cfg.DeadLetterExchange = contract.DeadLetterExchange(cfg.Queue)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = contract.DefaultPrefetch
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1 << 20
	}
	if cfg.LagInterval <= 0 {
		cfg.LagInterval = 5 * time.Second
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.LeaderRetry <= 0 {
		cfg.LeaderRetry = DefaultLeaderRetry
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.QueueType == "" {
		cfg.QueueType = Classic
	}
	host, _ := os.Hostname()
	c := &Consumer{
		cfg:       cfg,
		sink:      sink,
		tag:       fmt.Sprintf("eventstream-bridge-%s-%d", host, time.Now().UnixNano()),
		connected: make(chan struct{}),
	}
	if cfg.QueueType != Stream {
		c.redeliveries = newRedeliveryFilter(cfg.Prefetch)
	}
	c.lastOffset.Store(-1)
	c.startupTail.Store(-1)
	return c
}

// Ready reports whether the consumer is connected and consuming (stream mode: and has
// re-read the history up to the tail it found at start-up).
func (c *Consumer) Ready() bool {
	return c.ready.Load() && c.lastOffset.Load() >= c.startupTail.Load()
}

// StartupReadDone reports whether a stream consumer has read the stream up to the tail it found
// at start-up (at once for an empty stream); it stays true after that, through reconnects.
func (c *Consumer) StartupReadDone() bool {
	return c.startupKnown.Load() && c.lastOffset.Load() >= c.startupTail.Load()
}

// Consuming reports whether the consumer has a broker connection and a consumer on it now
// (Ready adds the stream start-up condition).
func (c *Consumer) Consuming() bool { return c.ready.Load() }

// Connected is closed the first time the consumer is consuming (for tests and start-up).
func (c *Consumer) Connected() <-chan struct{} { return c.connected }

// Run consumes until ctx is done, reconnecting after every loss. On return the channel and
// connection are closed; deliveries not yet acked go back to the queue. It returns nil when
// ctx ended it.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.cfg.Logger
	attempt := 0
	everConnected := false
	for {
		err := c.session(ctx, func() {
			if everConnected {
				c.cfg.Metrics.Reconnects.Inc()
				log.Info("reconnected to broker", "queue", c.cfg.Queue, "attempts", attempt)
			} else {
				log.Info("consuming", "queue", c.cfg.Queue, "queueType", c.cfg.QueueType)
			}
			everConnected = true
			attempt = 0
			c.ready.Store(true)
			c.cfg.Metrics.BrokerUp.Set(1)
			c.once.Do(func() { close(c.connected) })
		})
		c.ready.Store(false)
		c.cfg.Metrics.BrokerUp.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		delay := c.cfg.Backoff.Delay(attempt)
		attempt++
		log.Warn("broker session ended; reconnecting", "error", err, "retryIn", delay.String(), "attempt", attempt)
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.After(delay):
		}
	}
}

func (c *Consumer) dial() (*amqp091.Connection, error) {
	conn, err := amqp091.DialConfig(c.cfg.URL, amqp091.Config{
		TLSClientConfig: c.cfg.TLS,
		Heartbeat:       c.cfg.Heartbeat,
		Properties:      amqp091.Table{"connection_name": "eventstream-bridge " + c.cfg.Queue},
		Dial:            amqp091.DefaultDial(c.cfg.DialTimeout),
	})
	if err != nil {
		// amqp091 errors quote at most the address, never the URI's credentials.
		return nil, fmt.Errorf("connect to broker: %w", err)
	}
	return conn, nil
}

// session runs one connection's life: connect, set up, consume until an error or ctx.
func (c *Consumer) session(ctx context.Context, connected func()) error {
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	connClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	c.conn.Store(conn)
	defer c.conn.Store(nil)

	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if c.cfg.DeclareTopology {
		if err := declareTopology(ch, c.cfg); err != nil {
			return err
		}
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch %d: %w", c.cfg.Prefetch, err)
	}
	var args amqp091.Table
	if c.cfg.QueueType == Stream {
		args = amqp091.Table{"x-stream-offset": c.streamStart(ctx, conn)}
	}
	// Classic and quorum: an exclusive consumer, so a second bridge on the same queue (which
	// would take every other event from the first one's clients) cannot consume; it stays not
	// ready and retries until the first is gone. Streams are read by every replica.
	exclusive := c.cfg.QueueType != Stream
	deliveries, err := ch.Consume(c.cfg.Queue, c.tag, false, exclusive, false, false, args)
	if err != nil {
		return fmt.Errorf("consume queue %q: %w", c.cfg.Queue, err)
	}

	sessionCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.sampleLag(sessionCtx, conn)
	}()
	defer func() {
		stop()
		wg.Wait()
	}()

	if c.cfg.QueueType == Stream {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runDeadLetterLeader(sessionCtx, conn)
		}()
	}

	connected()
	acks := ackBatch{ch: ch, max: ackBatchSize(c.cfg.Prefetch), timer: time.NewTimer(time.Hour)}
	acks.timer.Stop()
	defer acks.timer.Stop()
	if c.redeliveries != nil {
		defer c.redeliveries.sessionEnded()
	}
	for {
		var (
			d  amqp091.Delivery
			ok bool
		)
		if acks.n > 0 {
			// Deliveries handed to the hub wait for their ack while more arrive: the batch is
			// acked (one multiple=true ack) at acks.max, or once none arrived for ackDelay.
			select {
			case d, ok = <-deliveries:
			default:
				acks.armTimer()
				select {
				case d, ok = <-deliveries:
				case <-acks.timer.C:
					acks.armed = false
					if err := acks.flush(); err != nil {
						return err
					}
					continue
				case <-ctx.Done():
					// Handed off: acked, or the broker would send them again.
					if err := acks.flush(); err != nil {
						return err
					}
					continue
				case e := <-connClosed:
					return fmt.Errorf("connection closed: %w", closeErr(e))
				case e := <-chClosed:
					return fmt.Errorf("channel closed: %w", closeErr(e))
				}
			}
		} else {
			select {
			case <-ctx.Done():
				// Cancel first so the broker stops sending, then close: deliveries not acked
				// (in flight or in the client buffer; none handed to the hub) return to the queue.
				_ = ch.Cancel(c.tag, false)
				_ = ch.Close()
				return nil
			case e := <-connClosed:
				return fmt.Errorf("connection closed: %w", closeErr(e))
			case e := <-chClosed:
				return fmt.Errorf("channel closed: %w", closeErr(e))
			case d, ok = <-deliveries:
			}
		}
		if !ok {
			return errors.New("delivery channel closed")
		}
		if err := c.handle(ctx, &d, &acks); err != nil {
			return err
		}
		if acks.n >= acks.max {
			if err := acks.flush(); err != nil {
				return err
			}
		}
	}
}

// ackBatch acknowledges deliveries already handed to the hub with one multiple=true ack for
// many: at max pending, or ackDelay after the delivery channel ran empty (a burst is acked
// once, not once per lull between its deliveries).
type ackBatch struct {
	ch    *amqp091.Channel
	max   int    // flush at this many pending
	last  uint64 // highest delivery tag handed off and not yet acked
	n     int
	timer *time.Timer // fires ackDelay after armTimer; stopped by flush
	armed bool
}

// ackDelay is how long handed-off deliveries wait for their ack once no more are arriving. It
// costs nothing in delivery latency (the hub has them); it saves the broker and the bridge an
// ack frame per short lull: at 5,000 messages/s, ~100 acks/s instead of thousands.
const ackDelay = 10 * time.Millisecond

// ackBatchSize is the most deliveries acked at once: half the prefetch, so the broker always
// has room to send while a batch is pending.
func ackBatchSize(prefetch int) int { return max(1, prefetch/2) }

func (a *ackBatch) add(tag uint64) {
	a.last = tag
	a.n++
}

// armTimer starts the ack delay unless it runs already.
func (a *ackBatch) armTimer() {
	if !a.armed {
		a.timer.Reset(ackDelay)
		a.armed = true
	}
}

func (a *ackBatch) flush() error {
	if a.armed {
		a.timer.Stop()
		a.armed = false
	}
	if a.n == 0 {
		return nil
	}
	if err := a.ch.Ack(a.last, true); err != nil {
		return fmt.Errorf("ack deliveries up to %d: %w", a.last, err)
	}
	a.n = 0
	return nil
}

// streamStart is where a stream consumer attaches: after the last offset handled when
// reconnecting; at start-up the first retained message with StreamFromFirst, else StreamReplay
// messages before the stream's tail, so the hub's replay
// ring holds recent events and clients of a restarted (or another) bridge resume exactly; "next"
// without replay or for an empty stream.
func (c *Consumer) streamStart(ctx context.Context, conn *amqp091.Connection) any {
	if last := c.lastOffset.Load(); last >= 0 {
		return last + 1
	}
	if c.cfg.StreamReplay > 0 || c.cfg.StreamFromFirst {
		tail, found, ok := c.streamTail(ctx, conn)
		if found {
			c.startupTail.Store(tail)
		}
		c.startupKnown.Store(ok)
		switch {
		case c.cfg.StreamFromFirst:
			return "first"
		case found:
			return max(0, tail-int64(c.cfg.StreamReplay))
		}
	}
	return "next"
}

func closeErr(e *amqp091.Error) error {
	if e == nil {
		return amqp091.ErrClosed
	}
	return e
}

// handle processes one delivery and adds it to acks once the hub took it. An error ends the
// session (the delivery stays unacked and returns to the queue with the channel).
func (c *Consumer) handle(ctx context.Context, d *amqp091.Delivery, acks *ackBatch) error {
	c.cfg.Metrics.Consumed.Inc()
	if d.Redelivered && c.cfg.QueueType != Stream {
		c.cfg.Metrics.Redelivered.Inc()
	}
	end := func(string) {}
	if c.cfg.Observe != nil {
		end = c.cfg.Observe(ctx, d)
	}
	offset := int64(-1)
	if c.cfg.QueueType == Stream {
		var ok bool
		if offset, ok = streamOffset(d.Headers); !ok {
			end("error")
			return errors.New("stream delivery without x-stream-offset header")
		}
	}

	values, reason := c.classify(d)
	if reason != "" {
		err := c.skipMalformed(d, reason, offset, acks)
		end("malformed:" + reason)
		return err
	}
	if c.redeliveries != nil {
		if c.redeliveries.duplicate(d.Redelivered, d.Body) {
			// Handed to the hub before the connection dropped: ack it, do not publish it again.
			c.cfg.Metrics.RedeliveredSuppressed.Inc()
			c.redeliveries.handedOff(d.Body)
			acks.add(d.DeliveryTag)
			end("duplicate")
			return nil
		}
		c.redeliveries.handedOff(d.Body)
	}

	c.sink.Publish(hub.Message{
		RoutingKey: d.RoutingKey,
		Values:     values,
		Data:       d.Body,
		Offset:     offset,
		Published:  publishedAt(d),
	})
	acks.add(d.DeliveryTag)
	if offset >= 0 {
		c.lastOffset.Store(offset)
	}
	end("delivered")
	return nil
}

// classify returns the routing key's placeholder values, or the reason the message is
// malformed: body over MaxMessageBytes, routing key outside the template, body not JSON.
func (c *Consumer) classify(d *amqp091.Delivery) (values []string, reason string) {
	if len(d.Body) > c.cfg.MaxMessageBytes {
		return nil, ReasonOversize
	}
	values, ok := c.cfg.Template.Match(d.RoutingKey)
	if !ok {
		return nil, ReasonRoutingKey
	}
	if !json.Valid(d.Body) {
		return nil, ReasonNotJSON
	}
	return values, ""
}

// skipMalformed takes a malformed delivery out of the consumer's way. Classic/quorum: rejected
// without requeue, so the broker dead-letters it; counted and logged here. Stream: acked and
// skipped (the hub's position moves past it); the dead-letter leader (deadletter.go), which
// reads the stream on its own, republishes it to the DLX exactly once over all replicas.
func (c *Consumer) skipMalformed(d *amqp091.Delivery, reason string, offset int64, acks *ackBatch) error {
	if c.cfg.QueueType != Stream {
		c.countMalformed(d, reason)
		// A later multiple=true ack does not touch it: the reject settles it now.
		if err := d.Reject(false); err != nil {
			return fmt.Errorf("reject delivery %d: %w", d.DeliveryTag, err)
		}
		return nil
	}
	c.sink.Advance(offset)
	acks.add(d.DeliveryTag)
	c.lastOffset.Store(offset)
	return nil
}

// countMalformed counts a dead-lettered message and logs it (rate-limited per reason).
func (c *Consumer) countMalformed(d *amqp091.Delivery, reason string) {
	c.cfg.Metrics.Malformed.WithLabelValues(reason).Inc()
	if c.logLimiter.allow(reason) {
		c.cfg.Logger.Warn("malformed message dead-lettered", "reason", reason,
			"routingKey", truncate(d.RoutingKey, 255), "messageId", truncate(d.MessageId, 128),
			"bytes", len(d.Body), "suppressedSinceLast", c.logLimiter.takeSuppressed(reason))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// streamOffset reads the x-stream-offset header of a stream delivery.
func streamOffset(h amqp091.Table) (int64, bool) {
	switch v := h["x-stream-offset"].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int:
		return int64(v), true
	}
	return 0, false
}

// publishedAt is the publish time: the timestamp_in_ms header when present (millisecond
// resolution), else the AMQP timestamp property (seconds), else zero.
func publishedAt(d *amqp091.Delivery) time.Time {
	switch v := d.Headers[events.TimestampMillisHeader].(type) {
	case int64:
		return time.UnixMilli(v)
	case int32:
		return time.UnixMilli(int64(v))
	}
	return d.Timestamp
}

// malformedLogLimiter logs at most one malformed message per reason per second, counting the
// ones it suppressed, so a flood of bad input cannot flood the logs.
type malformedLogLimiter struct {
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func (l *malformedLogLimiter) allow(reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if now.Sub(l.last[reason]) < time.Second {
		l.suppressed[reason]++
		return false
	}
	l.last[reason] = now
	return true
}

func (l *malformedLogLimiter) takeSuppressed(reason string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed[reason]
	l.suppressed[reason] = 0
	return n
}
