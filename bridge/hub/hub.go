// Package hub fans consumed events out to SSE subscribers.
//
// Each event is encoded once into a Frame whose bytes every matching subscriber shares.
// Subscribers are indexed by one of the template's placeholders, so publishing costs a few map
// look-ups plus work proportional to the matching subscribers, not to all subscribers.
// Publish never blocks on a client: each subscriber has a bounded buffer with an overflow
// policy, and writers drain buffers without holding the hub's locks.
//
// The hub keeps a bounded replay ring so a client reconnecting with Last-Event-ID resumes
// exactly when its id is inside the window, and gets a Gap otherwise.
package hub

import (
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Config configures a Hub.
type Config struct {
	// Placeholders is the number of routing-key template placeholders.
	Placeholders int
	// IDs selects the id scheme: EpochIDs (classic/quorum) or OffsetIDs (stream).
	IDs IDScheme
	// Epoch is the id epoch (EpochIDs); empty: NewEpoch().
	Epoch string
	// BufferSize bounds each subscriber's buffer (events); default 256.
	BufferSize int
	// Overflow is the full-buffer policy.
	Overflow OverflowPolicy
	// ReplaySize is how many recent events the replay ring keeps; 0 disables replay.
	ReplaySize int
	// ReplayMaxBytes bounds the memory the ring's frames hold (encoded bytes as allocated, plus
	// each frame's bookkeeping); default 64 MiB.
	ReplayMaxBytes int
	// OnDrop is called (outside the hub's locks) for dropped events; may be nil.
	OnDrop func(reason string, n int)
	// LastValues, when set, is given every published frame under the hub's lock, so that
	// SubscribeSnapshot and Resync read it consistently with the subscriptions; nil: no
	// snapshots.
	LastValues LastValues
	// OnDisconnect is called (outside the hub's locks) when the Disconnect policy ends a slow
	// subscription; may be nil. Its buffered events are not dropped events: they are in the
	// replay ring (or the stream), where the client resumes them with Last-Event-ID, and a
	// client that comes back too late is told by a gap.
	OnDisconnect func()
}

// Message is a consumed event handed to Publish.
type Message struct {
	RoutingKey string
	// Values are the placeholder values of RoutingKey; the hub keeps the slice.
	Values []string
	// Data is the event body; it is copied into the frame, the caller may reuse it.
	Data []byte
	// Offset is the stream offset (OffsetIDs only).
	Offset int64
	// Published is when the publisher sent the event (zero: unknown), for latency metrics.
	Published time.Time
}

// Frame is an encoded event shared by all subscribers; it is immutable.
type Frame struct {
	// Pos is the event's position: seq (EpochIDs) or stream offset (OffsetIDs).
	Pos        int64
	ID         string
	RoutingKey string
	Values     []string
	// Bytes is the complete SSE event (id, data lines, blank line), in an allocation of its own
	// that holds nothing more: cap(Bytes) is what the allocator handed out for len(Bytes).
	Bytes     []byte
	Published time.Time
	// heldBytes is the memory the frame keeps alive: Bytes as allocated, the frame itself, its
	// id, routing key and values. The replay ring's byte bound counts it.
	heldBytes int
}

// HeldBytes is the memory the frame keeps alive (its encoded bytes as allocated and its
// bookkeeping), the figure the replay ring's and the snapshot store's byte bounds count.
func (f *Frame) HeldBytes() int { return f.heldBytes }

// frameOverhead is the memory a frame holds beside its encoded bytes and strings.
const frameOverhead = int(unsafe.Sizeof(Frame{}))

func newFrame(scheme IDScheme, epoch string, pos int64, m Message) *Frame {
	id := formatID(scheme, epoch, pos)
	ev := sse.Event{ID: id, Data: m.Data}
	// Exactly the encoded size, rounded up to the allocator's size class (slices.Grow reports
	// it as the capacity): a worst-case guess would keep up to 3x the event alive for as long
	// as the frame lives in the ring and in buffers.
	b := sse.AppendEvent(slices.Grow([]byte(nil), sse.EncodedLen(ev)), ev)
	f := &Frame{
		Pos:        pos,
		ID:         id,
		RoutingKey: m.RoutingKey,
		Values:     m.Values,
		Bytes:      b,
		Published:  m.Published,
	}
	f.heldBytes = cap(b) + frameOverhead + len(id) + len(m.RoutingKey) +
		cap(m.Values)*int(unsafe.Sizeof(""))
	return f
}

// Hub is safe for concurrent use. Publish is meant to be called by one consumer goroutine at a
// time (calls are serialised).
type Hub struct {
	cfg Config

	publishMu sync.Mutex // serialises Publish; guards seq and the ring's contents with mu.RLock

	mu         sync.RWMutex // write: subscription changes and ring reads; read: Publish
	byValue    []map[string]map[*Subscriber]struct{}
	unfiltered map[*Subscriber]struct{}
	unsettled  map[*Subscriber]struct{}
	count      int

	// ring state: frames with Pos in (floor, last] are all in the ring (in order, filtered by
	// nothing); known is false until the hub has a position (stream mode before the first
	// event).
	ring      []*Frame
	ringHead  int
	ringLen   int
	ringBytes int
	floor     int64
	last      int64
	known     bool
}

// New returns an empty hub.
func New(cfg Config) *Hub {
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = contract.DefaultBufferSize
	}
	if cfg.ReplayMaxBytes <= 0 {
		cfg.ReplayMaxBytes = 64 << 20
	}
	if cfg.Epoch == "" {
		cfg.Epoch = NewEpoch()
	}
	if cfg.OnDrop == nil {
		cfg.OnDrop = func(string, int) {}
	}
	if cfg.OnDisconnect == nil {
		cfg.OnDisconnect = func() {}
	}
	h := &Hub{
		cfg:        cfg,
		byValue:    make([]map[string]map[*Subscriber]struct{}, cfg.Placeholders),
		unfiltered: map[*Subscriber]struct{}{},
		unsettled:  map[*Subscriber]struct{}{},
	}
	for i := range h.byValue {
		h.byValue[i] = map[string]map[*Subscriber]struct{}{}
	}
	if cfg.ReplaySize > 0 {
		h.ring = make([]*Frame, cfg.ReplaySize)
	}
	if cfg.IDs == EpochIDs {
		h.known = true // seqs start at 1; everything after 0 is this process's
	}
	return h
}

// Epoch is the hub's id epoch.
func (h *Hub) Epoch() string { return h.cfg.Epoch }

// Scheme is the hub's id scheme.
func (h *Hub) Scheme() IDScheme { return h.cfg.IDs }

// Len is the number of subscribers.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count
}

// Publish encodes m once and offers it to every matching subscriber, returning the frame and
// how many subscribers it was handed to. When Publish returns, the event is in every matching
// subscriber's buffer (or was dropped there by its overflow policy): the caller may ack it.
// In OffsetIDs mode an offset at or below the last published one is a redelivery and is
// skipped (nil frame).
func (h *Hub) Publish(m Message) (*Frame, int) {
	h.publishMu.Lock()
	defer h.publishMu.Unlock()

	var pos int64
	if h.cfg.IDs == OffsetIDs {
		if h.known && m.Offset <= h.last {
			return nil, 0
		}
		pos = m.Offset
	} else {
		pos = h.last + 1
	}
	f := newFrame(h.cfg.IDs, h.cfg.Epoch, pos, m)

	if !h.known {
		h.settle(pos)
	}

	h.mu.RLock()
	h.appendRing(f)
	if h.cfg.LastValues != nil {
		h.cfg.LastValues.Put(f)
	}
	matched := 0
	for i, v := range m.Values {
		if i >= len(h.byValue) {
			break
		}
		for s := range h.byValue[i][v] {
			if s.filter.Matches(m.Values) {
				s.offer(f, h.cfg.Overflow, h.cfg.OnDrop)
				matched++
			}
		}
	}
	for s := range h.unfiltered {
		s.offer(f, h.cfg.Overflow, h.cfg.OnDrop)
		matched++
	}
	h.mu.RUnlock()
	return f, matched
}

// Advance records that stream offset pos was consumed without an event (a malformed message
// the consumer dead-letters): the hub's position moves on, so a client whose cursor is just
// before pos is not told about a gap that is none. OffsetIDs only; positions at or below the
// last one are ignored.
func (h *Hub) Advance(pos int64) {
	if h.cfg.IDs != OffsetIDs {
		return
	}
	h.publishMu.Lock()
	defer h.publishMu.Unlock()
	if h.known && pos <= h.last {
		return
	}
	if !h.known {
		h.settle(pos)
	}
	h.mu.RLock()
	h.last = pos
	if len(h.ring) == 0 {
		h.floor = pos
	}
	h.mu.RUnlock()
}

// settle runs once in stream mode when the first position becomes known: subscribers that
// asked to resume from before it cannot be served from memory and get a gap.
func (h *Hub) settle(first int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.known = true
	h.floor, h.last = first-1, first-1
	for s := range h.unsettled {
		s.mu.Lock()
		if s.cursorPos < h.floor && !s.closed {
			s.gap = &Gap{Reason: "expired"}
			s.skipUpTo = -1
			s.signal()
		}
		s.unsettled = false
		s.mu.Unlock()
		delete(h.unsettled, s)
	}
}

// appendRing adds f as the newest position; called with publishMu held.
func (h *Hub) appendRing(f *Frame) {
	h.last = f.Pos
	if len(h.ring) == 0 {
		h.floor = f.Pos
		return
	}
	for h.ringLen > 0 && (h.ringLen == len(h.ring) || h.ringBytes+f.heldBytes > h.cfg.ReplayMaxBytes) {
		old := h.ring[h.ringHead]
		h.ring[h.ringHead] = nil
		h.ringHead = (h.ringHead + 1) % len(h.ring)
		h.ringLen--
		h.ringBytes -= old.heldBytes
		h.floor = old.Pos
	}
	if f.heldBytes > h.cfg.ReplayMaxBytes {
		h.floor = f.Pos
		return
	}
	h.ring[(h.ringHead+h.ringLen)%len(h.ring)] = f
	h.ringLen++
	h.ringBytes += f.heldBytes
}

// Subscribe registers a subscriber with filter (one entry per placeholder) resuming after
// cursor. The returned gap, when non-nil, must be sent to the client before anything else:
// the hub cannot place the cursor (foreign epoch, malformed, in the future) or the events
// after it have left the replay window. Replayed events are delivered by Take before live ones.
func (h *Hub) Subscribe(filter Filter, cursor Cursor) (*Subscriber, *Gap) {
	s, gap, _ := h.subscribe(filter, cursor, false)
	return s, gap
}

// subscribe registers a subscriber; with withSnapshot, when the client starts without a cursor
// or with one that cannot be resumed (a gap), it also takes the snapshot under the same lock
// (see SubscribeSnapshot).
func (h *Hub) subscribe(filter Filter, cursor Cursor, withSnapshot bool) (*Subscriber, *Gap, *Snapshot) {
	s := &Subscriber{
		hub:      h,
		filter:   filter,
		indexed:  -1,
		notify:   make(chan struct{}, 1),
		limit:    h.cfg.BufferSize,
		skipUpTo: -1,
	}
	for i := len(filter) - 1; i >= 0; i-- {
		if filter[i] != nil {
			s.indexed = i
			break
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	gap := h.resume(s, cursor)
	if s.indexed < 0 {
		h.unfiltered[s] = struct{}{}
	} else {
		for _, v := range filter[s.indexed] {
			set := h.byValue[s.indexed][v]
			if set == nil {
				set = map[*Subscriber]struct{}{}
				h.byValue[s.indexed][v] = set
			}
			set[s] = struct{}{}
		}
	}
	h.count++
	var snap *Snapshot
	if withSnapshot && (!cursor.Present || gap != nil) {
		// The snapshot holds the newest event of every key up to now: the replayed backlog
		// (the current process's events after a foreign epoch) is in it already.
		s.backlog = nil
		snap = h.snapshotLocked(filter)
	}
	if len(s.backlog) > 0 {
		s.signal()
	}
	return s, gap, snap
}

// resume places cursor; called with mu held exclusively (so no Publish runs).
func (h *Hub) resume(s *Subscriber, c Cursor) *Gap {
	if !c.Present {
		return nil
	}
	if !c.Valid {
		return &Gap{Reason: "unknown_id"}
	}
	if h.cfg.IDs == EpochIDs && c.Epoch != h.cfg.Epoch {
		// An id of another bridge process, usually the previous one: what happened between
		// cannot be placed, so a gap; then this process's events from its first one while the
		// ring still holds it (floor 0), which includes the backlog that waited in the durable
		// queue while no bridge ran. Events the previous process handed out but had not acked
		// come again (at-least-once; counted as redeliveries by the consumer).
		if h.floor == 0 {
			h.replayAfter(s, 0)
		}
		return &Gap{Reason: "unknown_id"}
	}
	if h.cfg.IDs == OffsetIDs {
		if !h.known {
			// The first position is not known yet: skip up to the cursor and decide at the first
			// publish whether events before it were missed.
			s.skipUpTo, s.cursorPos, s.unsettled = c.Pos, c.Pos, true
			h.unsettled[s] = struct{}{}
			return nil
		}
		if c.Pos >= h.last {
			// This replica has not reached the client's position yet (another replica is ahead):
			// deliver only what comes after it.
			s.skipUpTo = c.Pos
			return nil
		}
	} else if c.Pos > h.last {
		return &Gap{Reason: "unknown_id"}
	}
	if c.Pos < h.floor {
		return &Gap{Reason: "expired"}
	}
	h.replayAfter(s, c.Pos)
	return nil
}

// replayAfter queues the ring's frames after pos that match s's filter as s's backlog;
// called with mu held exclusively.
func (h *Hub) replayAfter(s *Subscriber, pos int64) {
	for i := 0; i < h.ringLen; i++ {
		f := h.ring[(h.ringHead+i)%len(h.ring)]
		if f.Pos > pos && s.filter.Matches(f.Values) {
			s.backlog = append(s.backlog, f)
		}
	}
}

// Unsubscribe removes s; it is idempotent. Its buffered frames are released.
func (h *Hub) Unsubscribe(s *Subscriber) {
	h.mu.Lock()
	removed := false
	if s.indexed < 0 {
		if _, ok := h.unfiltered[s]; ok {
			delete(h.unfiltered, s)
			removed = true
		}
	} else {
		for _, v := range s.filter[s.indexed] {
			set := h.byValue[s.indexed][v]
			if _, ok := set[s]; ok {
				delete(set, s)
				removed = true
				if len(set) == 0 {
					delete(h.byValue[s.indexed], v)
				}
			}
		}
	}
	delete(h.unsettled, s)
	if removed {
		h.count--
	}
	h.mu.Unlock()
	s.close()
}

// NeedsStreamRead reports whether a stream-mode cursor points before the replay window, or
// the hub has no position yet (a replica that just started and has not read its first
// message), so the events after it can only come reliably from reading the stream itself (see
// NewStreamSubscriber).
func (h *Hub) NeedsStreamRead(c Cursor) bool {
	if h.cfg.IDs != OffsetIDs || !c.Present || !c.Valid {
		return false
	}
	// Exclusive: Publish updates the ring state under the read lock.
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.known || c.Pos < h.floor
}

// NewStreamSubscriber returns a subscriber that the hub does not feed: a reader of the stream
// fills it with StreamFrame and OfferWait (stream mode, for a client resuming from before the
// replay window). It has the hub's buffer size; Unsubscribe is not needed.
func (h *Hub) NewStreamSubscriber(filter Filter) *Subscriber {
	return &Subscriber{
		hub:      h,
		filter:   filter,
		indexed:  -1,
		notify:   make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
		limit:    h.cfg.BufferSize,
		skipUpTo: -1,
	}
}

// StreamFrame encodes a message read from the stream at m.Offset, with the offset as its id.
func StreamFrame(m Message) *Frame { return newFrame(OffsetIDs, "", m.Offset, m) }
