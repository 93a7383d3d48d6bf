package bench

import (
	"context"
	"fmt"
	"time"
)

// ConsumerResult is the consumer scenario: how fast the bridge's AMQP consumer takes a backlog
// from RabbitMQ into the hub with no client connected.
type ConsumerResult struct {
	Events   int
	Prefetch string        // the bridge's --prefetch ("" : its default)
	Rate     float64       // events/s
	Took     time.Duration // from the first sample to the last event consumed
	CPU      time.Duration // the bridge's CPU time over Took
	Complete bool          // every event was consumed within the timeout
}

// Consumer measures the consumer alone: a bridge declares the topology and stops, events
// messages are published into its queue, then a fresh bridge on the same queue (no clients)
// drains the backlog; the rate is taken from its consumed counter, between the first sample
// after it is ready and the sample that shows the whole backlog consumed (a backlog drained
// before that sample: from the process start, connection included). Nothing else runs:
// the broker and the consumer have the machine (and whatever else runs on it).
func Consumer(ctx context.Context, env *Env, events int) (ConsumerResult, error) {
	res := ConsumerResult{Events: events}
	for i, f := range env.BridgeFlags {
		if f == "--prefetch" && i+1 < len(env.BridgeFlags) {
			res.Prefetch = env.BridgeFlags[i+1]
		}
	}
	n := env.seq.Add(1)
	exchange := fmt.Sprintf("bench.%s.%d.events", env.RunID, n)
	queue := fmt.Sprintf("bench.%s.%d.sse", env.RunID, n)
	opts := BridgeOptions{Binary: env.BridgeBinary, AMQPURL: env.AMQPURL, Exchange: exchange,
		Queue: queue, JWTSecret: env.Secret, Extra: env.BridgeFlags, Log: env.Log}
	first, err := StartBridge(ctx, opts) // declares exchange, queue and binding
	if err != nil {
		return res, err
	}
	first.Stop()
	pub, err := DialPublisher(env.AMQPURL, exchange)
	if err != nil {
		return res, err
	}
	defer pub.Close()
	defer pub.Cleanup(queue)
	env.logf("consumer: publishing a backlog of %d events", events)
	for k := 0; k < events; k++ {
		if err := pub.PublishOne(ctx, int64(k), Tenant(k%1000)); err != nil {
			return res, fmt.Errorf("publish event %d: %w", k, err)
		}
	}
	if err := pub.WaitQueued(ctx, queue, events, time.Minute); err != nil {
		return res, err
	}
	started := time.Now()
	b, err := StartBridge(ctx, opts)
	if err != nil {
		return res, err
	}
	defer b.Stop()
	const consumed = "eventstream_bridge_events_consumed_total"
	m0, err := b.Metrics()
	if err != nil {
		return res, err
	}
	p0, _ := ReadProc(b.PID())
	t0 := time.Now()
	c0 := m0[consumed]
	timeout := time.Duration(events/1000+30) * time.Second // 1,000/s is far below any acceptable rate
	_, err = b.WaitMetric(consumed, func(v float64) bool { return int(v) >= events }, timeout)
	res.Took = time.Since(t0)
	p1, _ := ReadProc(b.PID())
	res.CPU = p1.CPU - p0.CPU
	res.Complete = err == nil
	res.Rate = (float64(events) - c0) / res.Took.Seconds()
	if !res.Complete {
		m1, _ := b.Metrics()
		res.Rate = (m1[consumed] - c0) / res.Took.Seconds()
	}
	if int(c0) >= events { // a small backlog, drained before the first sample: count from the start
		res.Took = time.Since(started)
		res.Rate = float64(events) / res.Took.Seconds()
	}
	env.logf("consumer: %d events (%.0f consumed before the first sample) in %v: %.0f events/s, bridge CPU %v (%.1f µs per event), complete %v",
		events, c0, res.Took.Round(time.Millisecond), res.Rate, res.CPU, res.CPUPerEvent(), res.Complete)
	return res, nil
}

// CPUPerEvent is the bridge's CPU time per consumed event in microseconds.
func (r ConsumerResult) CPUPerEvent() float64 {
	if r.Rate <= 0 || r.Took <= 0 {
		return 0
	}
	return float64(r.CPU.Microseconds()) / (r.Rate * r.Took.Seconds())
}
