package controllers

import (
	"math/rand/v2"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Jitter spreads d over [0.9d, 1.1d) so that many EventStreams created together do not
// resync, or retry, together.
func Jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// jitteredBackoff is the rate limiter of failed reconciles: exponential from base to max
// per object, each delay jittered.
type jitteredBackoff struct {
	exponential workqueue.TypedRateLimiter[reconcile.Request]
	jitter      func(time.Duration) time.Duration
}

func newJitteredBackoff(base, max time.Duration, jitter func(time.Duration) time.Duration) workqueue.TypedRateLimiter[reconcile.Request] {
	return &jitteredBackoff{
		exponential: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](base, max),
		jitter:      jitter,
	}
}

func (b *jitteredBackoff) When(item reconcile.Request) time.Duration {
	return b.jitter(b.exponential.When(item))
}

func (b *jitteredBackoff) Forget(item reconcile.Request) { b.exponential.Forget(item) }

func (b *jitteredBackoff) NumRequeues(item reconcile.Request) int {
	return b.exponential.NumRequeues(item)
}
