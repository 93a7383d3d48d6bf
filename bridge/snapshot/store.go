// Package snapshot keeps the newest event per routing key (a last-value store), so a client
// that connects, or that lost continuity, can be sent the current state of every key it may
// read instead of refetching it from the application's database.
//
// The store holds the hub's frames themselves (shared with the replay ring and the client
// buffers; nothing is copied) and is bounded three ways:
//   - MaxKeys: at most this many routing keys;
//   - MaxBytes: at most this many bytes held, counted like the replay ring (each frame as
//     allocated, with its bookkeeping) plus the store's own bookkeeping per key;
//   - MaxAge: a key whose newest event is older than this is not served and is removed.
//
// Eviction policy: when a Put would exceed MaxKeys or MaxBytes, the keys updated least
// recently (in the order events were put, which is the queue's order) are removed first, so
// the store keeps the MaxKeys most recently updated keys. Age counts from the event's publish
// time (the publisher's timestamp, the same on every replica) or, without one, from when it
// was put. Expired keys are never served; they are removed from the least recently updated on
// at each Put and each Stats call (a key put with an older publish time than the keys before
// it waits for them). An event larger than MaxBytes on its own, or already expired when put,
// is not kept and removes its key's older event, which would no longer be the newest.
package snapshot

import (
	"sync"
	"time"
	"unsafe"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Defaults sized for a list of jobs: the newest status of 10,000 jobs of up to ~1 KiB each,
// for a day.
const (
	DefaultMaxKeys  = contract.DefaultSnapshotMaxKeys
	DefaultMaxBytes = contract.DefaultSnapshotMaxBytes
	DefaultMaxAge   = contract.DefaultSnapshotMaxAge
)

// Config bounds a Store.
type Config struct {
	// MaxKeys bounds the number of routing keys kept (at least 1).
	MaxKeys int
	// MaxBytes bounds the bytes held (at least 1).
	MaxBytes int
	// MaxAge bounds the age of the newest event of a key; 0: no age bound.
	MaxAge time.Duration
	// TenantIndex is the template placeholder naming the tenant: keys are grouped by it, so a
	// snapshot for some tenants reads only their keys.
	TenantIndex int
	// Partial reports whether the store may lack keys it would hold had it seen the queue's
	// whole history (a restarted process, a stream replica still reading its history). nil:
	// never partial.
	Partial func() bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// entryOverhead is what the store holds per key beside the frame: the entry, its share of the
// tenant's map (a slot of a string key and a pointer, at the map's worst load after growing)
// and of the tenant's list (a pointer, at worst twice). TestStoreHeapStaysWithinItsByteBound
// checks it against the live heap.
const entryOverhead = int(unsafe.Sizeof(entry{})) + 2*int(unsafe.Sizeof("")+unsafe.Sizeof(&entry{})) +
	2*int(unsafe.Sizeof(&entry{}))

// entry is a key's newest frame, in a doubly linked list ordered by last update.
type entry struct {
	frame      *hub.Frame
	at         time.Time // publish time, or when put
	prev, next *entry
	index      int // in its tenant's list
}

// tenantKeys are one tenant's entries, by routing key and as a list (collecting a snapshot
// walks the list: much faster than iterating the map).
type tenantKeys struct {
	byKey map[string]*entry
	list  []*entry
}

func (e *entry) held() int { return e.frame.HeldBytes() + entryOverhead }

// Store is a last-value store; it is safe for concurrent use.
type Store struct {
	cfg Config

	mu       sync.Mutex
	byTenant map[string]*tenantKeys
	oldest   *entry // least recently updated
	newest   *entry
	keys     int
	bytes    int
}

// New returns an empty store; zero bounds take the defaults.
func New(cfg Config) *Store {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, byTenant: map[string]*tenantKeys{}}
}

// Put makes f its routing key's newest event. The hub calls it for every event, in order,
// under its own lock, so a snapshot taken under that lock is exactly the events published
// before it.
func (s *Store) Put(f *hub.Frame) {
	now := s.cfg.Now()
	at := f.Published
	if at.IsZero() {
		at = now
	}
	tenant := s.tenantOf(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.byTenant[tenant]
	var e *entry
	if keys != nil {
		e = keys.byKey[f.RoutingKey]
	}
	if f.HeldBytes()+entryOverhead > s.cfg.MaxBytes || at.Before(s.cutoff(now)) {
		if e != nil {
			s.remove(tenant, e)
		}
		return
	}
	if e != nil {
		s.bytes -= e.held()
		e.frame, e.at = f, at
		s.bytes += e.held()
		s.unlink(e)
		s.append(e)
	} else {
		if keys == nil {
			keys = &tenantKeys{byKey: map[string]*entry{}}
			s.byTenant[tenant] = keys
		}
		e = &entry{frame: f, at: at, index: len(keys.list)}
		keys.byKey[f.RoutingKey] = e
		keys.list = append(keys.list, e)
		s.keys++
		s.bytes += e.held()
		s.append(e)
	}
	for s.keys > s.cfg.MaxKeys || s.bytes > s.cfg.MaxBytes {
		s.remove(s.tenantOf(s.oldest.frame), s.oldest)
	}
	s.expire(now)
}

// Collect appends to dst the newest frame of every key that matches filter and is not
// expired, in no particular order (the hub sorts them). Only the tenants the filter names
// are read when it names some; a filter of tenants only is not checked per key.
func (s *Store) Collect(filter hub.Filter, dst []*hub.Frame) []*hub.Frame {
	cutoff := s.cutoff(s.cfg.Now())
	tenants, others := filter.Split(s.cfg.TenantIndex)
	s.mu.Lock()
	defer s.mu.Unlock()
	collect := func(keys *tenantKeys) {
		if keys == nil {
			return
		}
		for _, e := range keys.list {
			if !e.at.Before(cutoff) && (!others || filter.Matches(e.frame.Values)) {
				dst = append(dst, e.frame)
			}
		}
	}
	if tenants != nil {
		for _, t := range tenants {
			collect(s.byTenant[t])
		}
		return dst
	}
	for _, keys := range s.byTenant {
		collect(keys)
	}
	return dst
}

// Partial reports whether the store may lack keys (Config.Partial).
func (s *Store) Partial() bool { return s.cfg.Partial != nil && s.cfg.Partial() }

// Stats removes expired keys and returns the number of keys and the bytes held.
func (s *Store) Stats() (keys, bytes int) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	return s.keys, s.bytes
}

func (s *Store) tenantOf(f *hub.Frame) string {
	if s.cfg.TenantIndex < len(f.Values) {
		return f.Values[s.cfg.TenantIndex]
	}
	return ""
}

// cutoff is the oldest event time still served at now (zero time: no age bound).
func (s *Store) cutoff(now time.Time) time.Time {
	if s.cfg.MaxAge <= 0 {
		return time.Time{}
	}
	return now.Add(-s.cfg.MaxAge)
}

// expire removes expired keys from the least recently updated on; called with mu held.
func (s *Store) expire(now time.Time) {
	cutoff := s.cutoff(now)
	for s.oldest != nil && s.oldest.at.Before(cutoff) {
		s.remove(s.tenantOf(s.oldest.frame), s.oldest)
	}
}

// remove drops e; called with mu held.
func (s *Store) remove(tenant string, e *entry) {
	keys := s.byTenant[tenant]
	delete(keys.byKey, e.frame.RoutingKey)
	last := keys.list[len(keys.list)-1]
	keys.list[e.index], last.index = last, e.index
	keys.list[len(keys.list)-1] = nil
	keys.list = keys.list[:len(keys.list)-1]
	if len(keys.byKey) == 0 {
		delete(s.byTenant, tenant)
	}
	s.unlink(e)
	s.keys--
	s.bytes -= e.held()
}

func (s *Store) append(e *entry) {
	e.prev, e.next = s.newest, nil
	if s.newest != nil {
		s.newest.next = e
	} else {
		s.oldest = e
	}
	s.newest = e
}

func (s *Store) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.newest = e.prev
	}
	e.prev, e.next = nil, nil
}
