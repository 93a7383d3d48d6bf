package amqp

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential from Initial, capped at Max, with jitter
// drawn from Rand so that many bridges restarting together do not reconnect in step.
type Backoff struct {
	Initial time.Duration // default 500ms
	Max     time.Duration // default 30s
	// Rand returns a value in [0, 1); default math/rand/v2. Tests inject a fixed source.
	Rand func() float64
}

// Delay returns the wait before reconnect attempt number attempt (0-based): a uniformly
// jittered value in [d/2, d) where d = min(Max, Initial·2^attempt).
func (b Backoff) Delay(attempt int) time.Duration {
	initial, max := b.Initial, b.Max
	if initial <= 0 {
		initial = 500 * time.Millisecond
	}
	if max <= 0 {
		max = 30 * time.Second
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
