package controllers

import (
	"context"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// listingBroker counts ListQueues calls; the rest of broker.Client is not used.
type listingBroker struct {
	broker.Client
	lists  int
	queues []broker.Queue
}

func (b *listingBroker) ListQueues(context.Context) ([]broker.Queue, error) {
	b.lists++
	return b.queues, nil
}

func TestBrokerListingsShareOneListingPerBroker(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	listings := newBrokerListings(clock, 15*time.Second)
	a := broker.Connection{ManagementURL: "http://a:15672", VHost: "/", Username: "u"}
	b := broker.Connection{ManagementURL: "http://b:15672", VHost: "/", Username: "u"}
	bcA := &listingBroker{queues: []broker.Queue{{Name: "q1", Messages: 3}, {Name: "q2"}}}
	bcB := &listingBroker{}
	ctx := context.Background()
	verified := clock.Now().Add(-time.Minute)

	for range 100 { // a hundred streams on broker a
		queues, _, err := listings.queueFigures(ctx, a, bcA, verified)
		if err != nil || queues["q1"].Messages != 3 {
			t.Fatalf("queues = %v, %v", queues, err)
		}
	}
	if bcA.lists != 1 {
		t.Errorf("100 readers of one broker listed %d times, want 1", bcA.lists)
	}
	if _, _, err := listings.queueFigures(ctx, b, bcB, verified); err != nil || bcB.lists != 1 {
		t.Errorf("another broker must be listed on its own: %d, %v", bcB.lists, err)
	}

	clock.SetTime(clock.Now().Add(16 * time.Second))
	_, _, _ = listings.queueFigures(ctx, a, bcA, verified)
	if bcA.lists != 2 {
		t.Errorf("a listing older than maxAge was reused (%d lists)", bcA.lists)
	}
	_, _, _ = listings.queueFigures(ctx, a, bcA, clock.Now())
	if bcA.lists != 3 {
		t.Errorf("a listing not taken after the stream's verification was reused (%d lists)", bcA.lists)
	}
}
