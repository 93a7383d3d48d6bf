package controllers

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// brokerListings share the listings of a broker virtual host (its queues with their figures,
// exchanges, bindings and policies) among all the streams on it, so that verifying or
// refreshing 500 streams costs a few listings per broker and interval instead of several
// requests per stream: the management API rate limit is spent on declarations.
//
// A listing is reused while it is younger than maxAge and was taken after the time the
// reader names (notBefore: its own last verification, so that a stream never judges its
// topology by a listing older than its own writes). A stale listing can only make a stream
// declare an object again (declarations are idempotent) or notice a deleted one at its next
// verification, never report a conflict that is gone: conflicts are re-read at each resync.
type brokerListings struct {
	queues    *listingCache[map[string]broker.Queue]
	exchanges *listingCache[map[string]broker.Exchange]
	bindings  *listingCache[map[string][]broker.Binding]
	policies  *listingCache[[]broker.Policy]
}

func newBrokerListings(c clock.PassiveClock, maxAge time.Duration) *brokerListings {
	return &brokerListings{
		queues:    newListingCache[map[string]broker.Queue](c, maxAge),
		exchanges: newListingCache[map[string]broker.Exchange](c, maxAge),
		bindings:  newListingCache[map[string][]broker.Binding](c, maxAge),
		policies:  newListingCache[[]broker.Policy](c, maxAge),
	}
}

// listingKey identifies a broker virtual host as seen with one set of credentials.
func listingKey(conn broker.Connection) string {
	return conn.ManagementURL + "\x00" + conn.VHost + "\x00" + conn.Username
}

// observedTopology is what the listings show of a virtual host.
type observedTopology struct {
	queues    map[string]broker.Queue
	exchanges map[string]broker.Exchange
	bindings  map[string][]broker.Binding // by queue
	policies  []broker.Policy
}

// observe returns the virtual host's topology from listings taken after notBefore, listing
// with bc what is missing or too old.
func (l *brokerListings) observe(ctx context.Context, conn broker.Connection, bc broker.Client, notBefore time.Time) (observedTopology, error) {
	var o observedTopology
	var err error
	key := listingKey(conn)
	if o.policies, _, err = l.policies.get(ctx, key, notBefore, func(ctx context.Context) ([]broker.Policy, error) {
		policies, err := bc.ListPolicies(ctx)
		if err != nil {
			return nil, brokerStepError(err, "list policies")
		}
		return policies, nil
	}); err != nil {
		return o, err
	}
	if o.exchanges, _, err = l.exchanges.get(ctx, key, notBefore, func(ctx context.Context) (map[string]broker.Exchange, error) {
		list, err := bc.ListExchanges(ctx)
		if err != nil {
			return nil, brokerStepError(err, "list exchanges")
		}
		byName := make(map[string]broker.Exchange, len(list))
		for _, x := range list {
			byName[x.Name] = x
		}
		return byName, nil
	}); err != nil {
		return o, err
	}
	if o.queues, _, err = l.listQueues(ctx, key, bc, notBefore); err != nil {
		return o, err
	}
	if o.bindings, _, err = l.bindings.get(ctx, key, notBefore, func(ctx context.Context) (map[string][]broker.Binding, error) {
		list, err := bc.ListBindings(ctx)
		if err != nil {
			return nil, brokerStepError(err, "list bindings")
		}
		byQueue := map[string][]broker.Binding{}
		for _, b := range list {
			byQueue[b.Queue] = append(byQueue[b.Queue], b)
		}
		return byQueue, nil
	}); err != nil {
		return o, err
	}
	return o, nil
}

// queueFigures returns the virtual host's queues, with their figures, from a listing taken
// after notBefore, and when that listing was taken.
func (l *brokerListings) queueFigures(ctx context.Context, conn broker.Connection, bc broker.Client, notBefore time.Time) (map[string]broker.Queue, time.Time, error) {
	return l.listQueues(ctx, listingKey(conn), bc, notBefore)
}

func (l *brokerListings) listQueues(ctx context.Context, key string, bc broker.Client, notBefore time.Time) (map[string]broker.Queue, time.Time, error) {
	return l.queues.get(ctx, key, notBefore, func(ctx context.Context) (map[string]broker.Queue, error) {
		list, err := bc.ListQueues(ctx)
		if err != nil {
			return nil, brokerStepError(err, "list queues")
		}
		byName := make(map[string]broker.Queue, len(list))
		for _, q := range list {
			byName[q.Name] = q
		}
		return byName, nil
	})
}

// recordDeclared adds what this operator just declared to the virtual host's listings, so that
// every stream sees the writes of the others at once (a policy claiming a queue above all)
// without listing again.
func (l *brokerListings) recordDeclared(conn broker.Connection, d broker.Declarations) {
	key := listingKey(conn)
	l.exchanges.update(key, func(old map[string]broker.Exchange) map[string]broker.Exchange {
		updated := maps.Clone(old)
		for _, x := range d.Exchanges {
			if _, ok := updated[x.Name]; !ok {
				updated[x.Name] = x
			}
		}
		return updated
	})
	l.queues.update(key, func(old map[string]broker.Queue) map[string]broker.Queue {
		updated := maps.Clone(old)
		for _, q := range d.Queues {
			if _, ok := updated[q.Name]; !ok {
				updated[q.Name] = broker.Queue{Name: q.Name, Type: q.Type, Durable: true, Arguments: map[string]any{"x-queue-type": q.Type}}
			}
		}
		return updated
	})
	l.bindings.update(key, func(old map[string][]broker.Binding) map[string][]broker.Binding {
		updated := maps.Clone(old)
		for _, b := range d.Bindings {
			updated[b.Queue] = append(slices.Clip(updated[b.Queue]), b)
		}
		return updated
	})
	l.policies.update(key, func(old []broker.Policy) []broker.Policy {
		updated := slices.Clone(old)
		for _, p := range d.Policies {
			updated = slices.DeleteFunc(updated, func(have broker.Policy) bool { return have.Name == p.Name })
			updated = append(updated, p)
		}
		return updated
	})
}

// recordUnbound removes bindings this operator just deleted from the listings.
func (l *brokerListings) recordUnbound(conn broker.Connection, removed []broker.Binding) {
	l.bindings.update(listingKey(conn), func(old map[string][]broker.Binding) map[string][]broker.Binding {
		updated := maps.Clone(old)
		for _, r := range removed {
			updated[r.Queue] = slices.DeleteFunc(slices.Clone(updated[r.Queue]), func(b broker.Binding) bool {
				return b.Source == r.Source && b.RoutingKey == r.RoutingKey
			})
		}
		return updated
	})
}

// forgetPolicies drops the virtual host's policy listing, after a stream withdrew its claim.
func (l *brokerListings) forgetPolicies(conn broker.Connection) {
	l.policies.forget(listingKey(conn))
}

// forget drops the virtual host's listings, after this operator deleted objects from it.
func (l *brokerListings) forget(conn broker.Connection) {
	key := listingKey(conn)
	l.queues.forget(key)
	l.exchanges.forget(key)
	l.bindings.forget(key)
	l.policies.forget(key)
}

// listingCache holds one listing of a kind per broker virtual host. Listings are read-only
// once stored: readers share them.
type listingCache[V any] struct {
	clock  clock.PassiveClock
	maxAge time.Duration

	mu      sync.Mutex
	entries map[string]*listing[V]
}

type listing[V any] struct {
	mu    sync.Mutex // held while listing, so concurrent readers of one virtual host list once
	at    time.Time  // when the request was started
	value V
	ok    bool
}

func newListingCache[V any](c clock.PassiveClock, maxAge time.Duration) *listingCache[V] {
	return &listingCache[V]{clock: c, maxAge: maxAge, entries: map[string]*listing[V]{}}
}

// get returns key's listing when it was taken after notBefore and less than maxAge ago,
// otherwise lists anew with list; and when the listing returned was taken.
func (c *listingCache[V]) get(ctx context.Context, key string, notBefore time.Time, list func(context.Context) (V, error)) (V, time.Time, error) {
	c.mu.Lock()
	entry, ok := c.entries[key]
	if !ok {
		entry = &listing[V]{}
		c.entries[key] = entry
	}
	c.mu.Unlock()

	entry.mu.Lock()
	defer entry.mu.Unlock()
	now := c.clock.Now()
	if entry.ok && entry.at.After(notBefore) && now.Sub(entry.at) < c.maxAge {
		return entry.value, entry.at, nil
	}
	value, err := list(ctx)
	if err != nil {
		var zero V
		return zero, time.Time{}, err
	}
	entry.at, entry.value, entry.ok = now, value, true
	return value, now, nil
}

// update replaces key's listing, when there is one, by change(listing); change must not
// modify its argument (readers share it).
func (c *listingCache[V]) update(key string, change func(V) V) {
	c.mu.Lock()
	entry, ok := c.entries[key]
	c.mu.Unlock()
	if !ok {
		return
	}
	entry.mu.Lock()
	defer entry.mu.Unlock()
	if entry.ok {
		entry.value = change(entry.value)
	}
}

// forget drops key's listing.
func (c *listingCache[V]) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}
