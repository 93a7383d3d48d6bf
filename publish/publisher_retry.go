package publish

import (
	"context"
	"fmt"
	"time"
)

// DefaultRetryPolicy publishes a returned message up to 6 times over about 3 s: long enough
// to outlast the moment after a broker restart when queues are not yet routable (observed:
// up to ~0.2 s after the broker accepts connections), short enough to report a missing
// binding promptly.
var DefaultRetryPolicy = RetryPolicy{Attempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}

// RetryPolicy says how a Publisher handles a message the broker returned (basic.return: no
// queue took it): it publishes the message again after a pause, up to Attempts publishes in
// all, and then reports ErrUnroutable. Pauses start at InitialBackoff and double up to
// MaxBackoff; a cancelled context ends them at once. A zero field takes its value from
// DefaultRetryPolicy.
type RetryPolicy struct {
	// Attempts is the number of publishes of one message in all; 1 means no retry.
	Attempts int
	// InitialBackoff is the pause before the first retry.
	InitialBackoff time.Duration
	// MaxBackoff bounds every pause.
	MaxBackoff time.Duration
}

// withDefaults fills zero fields from DefaultRetryPolicy and rejects negative ones.
func (r RetryPolicy) withDefaults() (RetryPolicy, error) {
	if r.Attempts < 0 || r.InitialBackoff < 0 || r.MaxBackoff < 0 {
		return r, fmt.Errorf("retry policy %+v: attempts and backoffs must not be negative", r)
	}
	if r.Attempts == 0 {
		r.Attempts = DefaultRetryPolicy.Attempts
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = DefaultRetryPolicy.InitialBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = DefaultRetryPolicy.MaxBackoff
	}
	return r, nil
}

// backoff is the pause before retry number retry (1 for the first retry).
func (r RetryPolicy) backoff(retry int) time.Duration {
	d := r.InitialBackoff
	for i := 1; i < retry && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// sleepContext pauses for d (nothing when d ≤ 0) or until ctx ends, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
