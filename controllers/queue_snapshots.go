package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// queueSnapshots shares one queue listing per broker virtual host among all the streams on
// it, so that refreshing their figures costs one management request per broker and
// interval instead of two per stream (500 streams would otherwise spend most of the broker
// rate limit on status).
type queueSnapshots struct {
	clock  clock.PassiveClock
	maxAge time.Duration

	mu      sync.Mutex
	entries map[string]*queueSnapshot
}

type queueSnapshot struct {
	mu     sync.Mutex // held while listing, so concurrent readers of one broker list once
	at     time.Time
	queues map[string]broker.Queue
}

func newQueueSnapshots(c clock.PassiveClock, maxAge time.Duration) *queueSnapshots {
	return &queueSnapshots{clock: c, maxAge: maxAge, entries: map[string]*queueSnapshot{}}
}

// snapshotKey identifies a broker virtual host as seen with one set of credentials.
func snapshotKey(conn broker.Connection) string {
	return conn.ManagementURL + "\x00" + conn.VHost + "\x00" + conn.Username
}

// queues returns the queues of the connection's virtual host from a listing taken no
// earlier than notBefore and no longer than maxAge ago, listing them with bc when needed,
// and when that listing was taken.
func (s *queueSnapshots) queues(ctx context.Context, conn broker.Connection, bc broker.Client, notBefore time.Time) (map[string]broker.Queue, time.Time, error) {
	key := snapshotKey(conn)
	s.mu.Lock()
	entry, ok := s.entries[key]
	if !ok {
		entry = &queueSnapshot{}
		s.entries[key] = entry
	}
	s.mu.Unlock()

	entry.mu.Lock()
	defer entry.mu.Unlock()
	now := s.clock.Now()
	if entry.queues != nil && !entry.at.Before(notBefore) && now.Sub(entry.at) < s.maxAge {
		return entry.queues, entry.at, nil
	}
	list, err := bc.ListQueues(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	queues := make(map[string]broker.Queue, len(list))
	for _, q := range list {
		queues[q.Name] = q
	}
	entry.at, entry.queues = now, queues
	return queues, now, nil
}
