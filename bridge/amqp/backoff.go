package amqp

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential from Initial, capped at Max, with jitter
// drawn from Rand so that many bridges restarting together do not reconnect in step.
//
// The cap is low on purpose: the bridge must be delivering again within 2 s of the broker
// accepting connections, so it never waits more than Max between attempts. One attempt per
// 0.5–1 s per bridge is cheap for the broker (a refused TCP connect while it is down).
type Backoff struct {
	Initial time.Duration // default 100ms
	Max     time.Duration // default 1s
	// Rand returns a value in [0, 1); default math/rand/v2. Tests inject a fixed source.
	Rand func() float64
}

// Default reconnect backoff bounds.
const (
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = time.Second
)

// Delay returns the wait before reconnect attempt number attempt (0-based): a uniformly
// jittered value in [d/2, d) where d = min(Max, Initial·2^attempt).
func (b Backoff) Delay(attempt int) time.Duration {
	initial, max := b.Initial, b.Max
	if initial <= 0 {
		initial = DefaultBackoffInitial
	}
	if max <= 0 {
		max = DefaultBackoffMax
	}
	random := b.Rand
	if random == nil {
		random = rand.Float64
	}
	d := initial
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(random()*float64(d/2))
}
