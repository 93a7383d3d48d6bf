package publish

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestPublishAcrossBrokerRestartLosesNothing restarts a dedicated broker while two publishers
// (one per exchange, bound to a stream queue and to a classic queue) publish sequence-numbered
// events and reconnect. Right after a restart RabbitMQ confirms messages it could not route yet;
// every event a publisher reported as published must be in its queue afterwards (no silent
// loss). Returned, retried and republished counts are logged.
func TestPublishAcrossBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Dedicated(t, "publisher-restart")
	ch := rabbitmqtest.Channel(t, node.URI)
	runs := []*restartPublisher{
		{name: "stream", queueType: "stream"},
		{name: "classic", queueType: "classic"},
	}
	var restarting atomic.Bool
	for _, r := range runs {
		r.exchange, r.queue, r.restarting = "restart-"+r.name, "restart-"+r.name, &restarting
		if err := ch.ExchangeDeclare(r.exchange, "topic", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(r.queue, true, false, false, false, amqp.Table{"x-queue-type": r.queueType}); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(r.queue, "team.*.job.*.status", r.exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); r.run(ctx, node.URI, stop) }()
	}
	stopped := false
	stopPublishers := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopPublishers()

	for _, r := range runs {
		poll.Until(t, 30*time.Second, r.name+" publishing before the restart", func() bool { return r.published.Load() >= 200 })
	}
	start := time.Now()
	restarting.Store(true)
	node.Stop(t)
	t.Logf("broker stopped after %v", time.Since(start).Round(time.Millisecond))
	node.Start(t)
	t.Logf("broker started after %v", time.Since(start).Round(time.Millisecond))
	for _, r := range runs {
		before := r.published.Load()
		poll.Until(t, 60*time.Second, r.name+" publishing after the restart", func() bool { return r.published.Load() >= before+1000 })
	}
	stopPublishers()
	t.Logf("publishers stopped after %v", time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}

	for _, r := range runs {
		r.checkQueue(t, node.URI)
	}
}

// restartPublisher publishes events numbered 1, 2, … to one exchange through a Publisher,
// dialling a new one whenever its connection fails, and republishes every event whose publish
// was not reported done. It keeps what it was told: which events are published, how many
// returns, unroutable reports and failed attempts it saw.
type restartPublisher struct {
	name, queueType, exchange, queue string

	published  atomic.Int64 // events reported done
	done       map[int]bool // by sequence number; read after run returned
	returned   [2]uint64    // messages the broker returned (each one retried by the Publisher), on connections made before / after the stop began
	unroutable int          // events reported ErrUnroutable (then republished)
	failed     int          // attempts failed otherwise: connection lost, nack (then republished)
	dials      int
	restarting *atomic.Bool // set when the broker's stop begins
}

const (
	restartWindow = 32                    // events in flight per publisher
	restartPace   = 10 * time.Millisecond // at most one window per pace: ≤ 3,200 events/s
)

func (r *restartPublisher) run(ctx context.Context, uri string, stop <-chan struct{}) {
	r.done = map[int]bool{}
	next := 1
	var again []int // events to publish again
	pace := time.NewTicker(restartPace)
	defer pace.Stop()
	for {
		afterStop := 0
		if r.restarting.Load() {
			afterStop = 1
		}
		pub := r.dial(ctx, uri)
		if pub == nil {
			return
		}
		for pub != nil {
			select {
			case <-stop:
				if len(again) == 0 {
					r.returned[afterStop] += pub.Returned()
					_ = pub.Close()
					return
				}
			case <-pace.C:
			}
			batch := again
			again = nil
			for len(batch) < restartWindow {
				batch = append(batch, next)
				next++
			}
			broken := false
			confirms := make([]*Confirmation, len(batch))
			for i, seq := range batch {
				var err error
				confirms[i], err = pub.PublishDeferred(ctx, "team.1.job.1.status", []byte(fmt.Sprintf(`{"seq":%d}`, seq)),
					PublishOptions{MessageID: r.name + "-" + strconv.Itoa(seq)})
				if err != nil {
					broken = true
					break
				}
			}
			for i, seq := range batch {
				if confirms[i] == nil {
					r.failed++
					again = append(again, seq)
					continue
				}
				waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := confirms[i].Wait(waitCtx)
				cancel()
				switch {
				case err == nil:
					r.done[seq] = true
					r.published.Add(1)
				case errors.Is(err, ErrUnroutable):
					r.unroutable++
					again = append(again, seq)
				default:
					r.failed++
					broken = broken || !errors.Is(err, ErrNacked)
					again = append(again, seq)
				}
			}
			if broken {
				r.returned[afterStop] += pub.Returned()
				_ = pub.Close()
				pub = nil
			}
		}
	}
}

// dial connects, retrying every 20 ms (the broker may be down) until ctx ends.
func (r *restartPublisher) dial(ctx context.Context, uri string) *Publisher {
	for {
		r.dials++
		pub, err := Dial(uri, nil, PublisherConfig{Exchange: r.exchange})
		if err == nil {
			return pub
		}
		if sleepContext(ctx, 20*time.Millisecond) != nil {
			return nil
		}
	}
}

// checkQueue reads r's queue from the start and fails on any event reported published that
// is not in it.
func (r *restartPublisher) checkQueue(t *testing.T, uri string) {
	t.Helper()
	ch := rabbitmqtest.Channel(t, uri)
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	var args amqp.Table
	if r.queueType == "stream" {
		args = amqp.Table{"x-stream-offset": "first"}
	}
	deliveries, err := ch.Consume(r.queue, "", false, false, false, false, args)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	missing := func() int {
		n := 0
		for seq := range r.done {
			if seen[seq] == 0 {
				n++
			}
		}
		return n
	}
	idle := time.NewTimer(5 * time.Second)
	defer idle.Stop()
read:
	for missing() > 0 {
		select {
		case d, ok := <-deliveries:
			if !ok {
				break read
			}
			seq, err := strconv.Atoi(strings.TrimPrefix(d.MessageId, r.name+"-"))
			if err != nil {
				t.Fatalf("%s: message id %q", r.name, d.MessageId)
			}
			seen[seq]++
			_ = d.Ack(false)
			idle.Reset(5 * time.Second)
		case <-idle.C:
			break read // nothing more arrives: what is missing is lost
		}
	}
	var lost []int
	for seq := range r.done {
		if seen[seq] == 0 {
			lost = append(lost, seq)
		}
	}
	sort.Ints(lost)
	duplicates := 0
	for _, n := range seen {
		duplicates += max(0, n-1)
	}
	t.Logf("%s queue: %d events reported published, %d read back (%d duplicates); broker returned %d messages (retried) on connections made before the stop and %d after it, "+
		"%d events reported unroutable and %d attempts failed otherwise (republished); %d dials",
		r.queueType, len(r.done), len(seen), duplicates, r.returned[0], r.returned[1], r.unroutable, r.failed, r.dials)
	if len(lost) > 0 {
		t.Errorf("%s queue: %d events reported published are not in the queue (silent loss): %v", r.queueType, len(lost), lost[:min(len(lost), 20)])
	}
}
