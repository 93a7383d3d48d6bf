package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Stream mode dead-lettering, exactly once per malformed message whatever the number of
// replicas and restarts.
//
// A stream cannot dead-letter and every replica reads every message, so the replicas agree on
// one of them, the dead-letter leader, which republishes malformed messages to the DLX and
// records in the broker how far it got:
//
//   - The lock and the progress are one durable classic queue, contract.DeadLetterProgressQueue.
//     The leader is the replica holding an exclusive consumer on it: the broker refuses a
//     second one, and frees it only after the leader's channel is gone, returning the messages
//     the leader had not acked to the queue in the same step.
//   - The queue holds one message, the last stream offset examined, which the leader holds
//     unacked. Every republish is one AMQP transaction: the message to the DLX, the new
//     progress message, and the ack of the old one. A leader that dies before the commit
//     leaves neither the copy nor the progress; after it, both. The next leader reads the
//     progress and continues after it: no copy is made twice, none is skipped.
//   - The leader reads the stream with a consumer of its own, from the progress on (from the
//     stream's first retained message when there is no progress yet), independently of the
//     consumer feeding the hub. It records progress every ProgressInterval too, so a new
//     leader does not re-read more than that.
//
// Replicas that are not the leader try again every LeaderRetry. RabbitMQ 3.10 has no
// broker-side de-duplication for classic queues, and server-side offset tracking for streams
// exists only in the stream protocol, hence this construction over AMQP 0-9-1.

// Defaults of the dead-letter leader's timing.
const (
	DefaultLeaderRetry      = 2 * time.Second
	DefaultProgressInterval = 5 * time.Second
)

// progressMarkerHeader marks the message a new leader sends itself to find where the progress
// messages before it end.
const progressMarkerHeader = "x-eventstream-progress-marker"

// errNotLeader means another replica holds the dead-letter lock.
var errNotLeader = errors.New("another replica is the dead-letter leader")

// runDeadLetterLeader tries to become the dead-letter leader on conn and leads until ctx ends
// or conn fails, retrying every LeaderRetry.
func (c *Consumer) runDeadLetterLeader(ctx context.Context, conn *amqp091.Connection) {
	for {
		err := c.leadDeadLettering(ctx, conn)
		if ctx.Err() != nil || conn.IsClosed() {
			return
		}
		if !errors.Is(err, errNotLeader) {
			c.cfg.Logger.Warn("dead-letter leader stopped; retrying", "queue", c.cfg.Queue, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.After(c.cfg.LeaderRetry):
		}
	}
}

// deadLetterLeader is one leadership term on one channel pair.
type deadLetterLeader struct {
	c        *Consumer
	ch       *amqp091.Channel        // transactional: progress consumer, DLX and progress publishes
	progress <-chan amqp091.Delivery // deliveries of the progress queue (exclusive consumer)
	queue    string                  // the progress queue
	held     *amqp091.Delivery       // the current progress message, unacked; nil: none yet
	recorded int64                   // offset in held; -1: none
	returns  <-chan amqp091.Return   // messages of ch the broker could not route (mandatory)
}

// leadDeadLettering takes the lock (or returns errNotLeader), reads the progress and
// dead-letters from there until ctx ends or an error.
func (c *Consumer) leadDeadLettering(ctx context.Context, conn *amqp091.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open dead-letter channel: %w", err)
	}
	defer ch.Close()
	l := &deadLetterLeader{c: c, ch: ch, queue: contract.DeadLetterProgressQueue(c.cfg.Queue), recorded: -1}
	if _, err := ch.QueueDeclare(l.queue, true, false, false, false, amqp091.Table{"x-queue-type": string(Classic)}); err != nil {
		return fmt.Errorf("declare dead-letter progress queue %q: %w", l.queue, err)
	}
	// No prefetch limit: the queue holds one progress message (plus a marker), and a limit
	// could hold back the marker behind unexpected extra messages.
	if err := ch.Qos(0, 0, false); err != nil {
		return fmt.Errorf("set dead-letter progress prefetch: %w", err)
	}
	l.progress, err = ch.Consume(l.queue, c.tag+"-dead-letter", false, true, false, false, nil)
	if err != nil {
		// "in exclusive use": another replica leads. Any other refusal (permissions) is an
		// error to report, not a silent follower.
		var amqpErr *amqp091.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp091.AccessRefused && strings.Contains(amqpErr.Reason, "exclusive use") {
			return errNotLeader
		}
		return fmt.Errorf("consume dead-letter progress queue %q: %w", l.queue, err)
	}
	if err := ch.Tx(); err != nil {
		return fmt.Errorf("transaction mode on dead-letter channel: %w", err)
	}
	l.returns = ch.NotifyReturn(make(chan amqp091.Return, 4))
	if err := l.readProgress(ctx); err != nil {
		return err
	}
	c.cfg.Logger.Info("dead-letter leader for the stream", "queue", c.cfg.Queue, "examinedUpTo", l.recorded)
	return l.run(ctx, conn)
}

// readProgress finds the progress left by earlier leaders: it sends itself a marker through
// the progress queue; the messages delivered before the marker are earlier progress (the
// newest is kept, unacked; any other is acked with the marker).
func (l *deadLetterLeader) readProgress(ctx context.Context) error {
	marker := events.NewID()
	if err := l.ch.PublishWithContext(ctx, "", l.queue, false, false, amqp091.Publishing{
		Headers: amqp091.Table{progressMarkerHeader: marker}, DeliveryMode: amqp091.Persistent,
	}); err != nil {
		return fmt.Errorf("publish progress marker: %w", err)
	}
	if err := l.ch.TxCommit(); err != nil {
		return fmt.Errorf("commit progress marker: %w", err)
	}
	var stale []uint64
	for {
		d, err := l.next(ctx)
		if err != nil {
			return err
		}
		if d.Headers[progressMarkerHeader] == marker {
			stale = append(stale, d.DeliveryTag)
			break
		}
		offset, err := strconv.ParseInt(string(d.Body), 10, 64)
		if err != nil || d.Headers[progressMarkerHeader] != nil {
			stale = append(stale, d.DeliveryTag) // another leader's marker, or not ours
			continue
		}
		if l.held != nil {
			stale = append(stale, l.held.DeliveryTag)
		}
		l.held, l.recorded = &d, offset
	}
	for _, tag := range stale {
		if err := l.ch.Ack(tag, false); err != nil {
			return fmt.Errorf("ack stale progress message: %w", err)
		}
	}
	if err := l.ch.TxCommit(); err != nil {
		return fmt.Errorf("commit stale progress acks: %w", err)
	}
	return nil
}

// next waits for the next progress-queue delivery.
func (l *deadLetterLeader) next(ctx context.Context) (amqp091.Delivery, error) {
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case d, ok := <-l.progress:
		if !ok {
			return d, errors.New("dead-letter progress consumer closed")
		}
		return d, nil
	case <-ctx.Done():
		return amqp091.Delivery{}, ctx.Err()
	case <-timeout.C:
		return amqp091.Delivery{}, fmt.Errorf("no delivery from dead-letter progress queue %q within 10s", l.queue)
	}
}

// run reads the stream after the recorded progress and dead-letters every malformed message.
func (l *deadLetterLeader) run(ctx context.Context, conn *amqp091.Connection) error {
	c := l.c
	rch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open dead-letter stream reader channel: %w", err)
	}
	defer rch.Close()
	if err := rch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set dead-letter stream reader prefetch: %w", err)
	}
	var start any = "first"
	if l.recorded >= 0 {
		start = l.recorded + 1
	}
	deliveries, err := rch.Consume(c.cfg.Queue, c.tag+"-dead-letter-reader", false, false, false, false, amqp091.Table{"x-stream-offset": start})
	if err != nil {
		return fmt.Errorf("read stream %q for dead-lettering: %w", c.cfg.Queue, err)
	}
	examined := l.recorded
	ticker := time.NewTicker(c.cfg.ProgressInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if examined > l.recorded {
				if err := l.record(ctx, examined, nil); err != nil {
					return err
				}
			}
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("dead-letter stream reader closed")
			}
			offset, ok := streamOffset(d.Headers)
			if !ok {
				return errors.New("stream delivery without x-stream-offset header")
			}
			if offset > examined {
				if _, reason := c.classify(&d); reason != "" {
					if err := l.record(ctx, offset, &deadLetter{delivery: &d, reason: reason}); err != nil {
						return err
					}
					c.countMalformed(&d, reason)
				}
				examined = offset
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack dead-letter stream reader delivery: %w", err)
			}
		}
	}
}

// deadLetter is a malformed stream message to republish.
type deadLetter struct {
	delivery *amqp091.Delivery
	reason   string
}

// record commits, in one transaction, the republish of dl (when set), progress offset, and the
// ack of the previous progress message; then it waits for the new progress message, which it
// holds unacked.
func (l *deadLetterLeader) record(ctx context.Context, offset int64, dl *deadLetter) error {
	if dl != nil {
		d := dl.delivery
		headers := amqp091.Table{}
		for k, v := range d.Headers {
			headers[k] = v
		}
		headers[MalformedReasonHeader] = dl.reason
		if err := l.ch.PublishWithContext(ctx, l.c.cfg.DeadLetterExchange, d.RoutingKey, true, false, amqp091.Publishing{
			Headers:      headers,
			ContentType:  d.ContentType,
			DeliveryMode: amqp091.Persistent,
			MessageId:    d.MessageId,
			Timestamp:    d.Timestamp,
			Body:         d.Body,
		}); err != nil {
			return fmt.Errorf("republish to dead-letter exchange %q: %w", l.c.cfg.DeadLetterExchange, err)
		}
	}
	if err := l.ch.PublishWithContext(ctx, "", l.queue, true, false, amqp091.Publishing{
		DeliveryMode: amqp091.Persistent, Body: strconv.AppendInt(nil, offset, 10),
	}); err != nil {
		return fmt.Errorf("publish dead-letter progress: %w", err)
	}
	if l.held != nil {
		if err := l.ch.Ack(l.held.DeliveryTag, false); err != nil {
			return fmt.Errorf("ack previous dead-letter progress: %w", err)
		}
	}
	if err := l.ch.TxCommit(); err != nil {
		return fmt.Errorf("commit dead-letter of stream offset %d: %w", offset, err)
	}
	if err := l.republishReturned(ctx, offset); err != nil {
		return err
	}
	d, err := l.next(ctx)
	if err != nil {
		return err
	}
	l.held, l.recorded = &d, offset
	return nil
}

// republishReturned publishes again, each in a transaction of its own, what the broker
// returned of the last commit (mandatory: a copy or a progress message it could not route,
// e.g. right after a broker restart), until nothing comes back or ctx ends. The broker sends a
// return before the commit's answer, so after TxCommit every return of it is in l.returns.
// The commit already moved the progress, so a returned copy must still be stored: a copy is
// never given up silently.
func (l *deadLetterLeader) republishReturned(ctx context.Context, offset int64) error {
	backoff := 100 * time.Millisecond
	for {
		var returned []amqp091.Return
		for more := true; more; {
			select {
			case r := <-l.returns:
				returned = append(returned, r)
			default:
				more = false
			}
		}
		if len(returned) == 0 {
			return nil
		}
		l.c.cfg.Logger.Warn("broker returned a dead-letter publish; publishing it again",
			"offset", offset, "exchange", returned[0].Exchange, "routingKey", returned[0].RoutingKey, "returned", len(returned))
		select {
		case <-ctx.Done():
			l.c.cfg.Logger.Error("dead-letter copy not stored: stopped while the broker returned it",
				"offset", offset, "queue", l.c.cfg.Queue)
			return ctx.Err()
		case <-l.c.cfg.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		for _, r := range returned {
			if err := l.ch.PublishWithContext(ctx, r.Exchange, r.RoutingKey, true, false, amqp091.Publishing{
				Headers: r.Headers, ContentType: r.ContentType, DeliveryMode: r.DeliveryMode,
				MessageId: r.MessageId, Timestamp: r.Timestamp, Body: r.Body,
			}); err != nil {
				return fmt.Errorf("publish returned dead-letter message again: %w", err)
			}
		}
		if err := l.ch.TxCommit(); err != nil {
			return fmt.Errorf("commit republished dead-letter messages: %w", err)
		}
	}
}
