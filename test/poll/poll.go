// Package poll waits for a condition in tests and test tools: one polling loop for every
// package instead of a copy in each. Suites written with Gomega keep Eventually.
package poll

import (
	"context"
	"testing"
	"time"
)

// Interval is the pause between two looks at the condition in Until.
const Interval = 10 * time.Millisecond

// Until polls cond every Interval until it holds and returns how long that took. When
// timeout passes first it fails and stops the test (t.Fatalf) naming what it waited for, so
// call it from the test's own goroutine; elsewhere use Within.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if !Within(context.Background(), timeout, Interval, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	return time.Since(start)
}

// Within polls cond every interval until it holds (true), or until timeout passes or ctx
// ends (false). cond runs at least once, and once more at the deadline.
func Within(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}
