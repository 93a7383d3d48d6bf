package poll

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinReturnsOnceTheConditionHolds(t *testing.T) {
	var looks atomic.Int32
	if !Within(context.Background(), 10*time.Second, time.Millisecond, func() bool { return looks.Add(1) >= 3 }) {
		t.Fatal("Within gave up on a condition that came true")
	}
	if n := looks.Load(); n != 3 {
		t.Errorf("looked %d times, want 3", n)
	}
}

func TestWithinGivesUpAtTheDeadline(t *testing.T) {
	start := time.Now()
	if Within(context.Background(), 50*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Fatal("Within reported a condition that never held")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the 50ms deadline", waited)
	}
}

func TestWithinEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Within(ctx, time.Hour, time.Millisecond, func() bool { return false }) {
		t.Fatal("Within reported a condition that never held")
	}
}
