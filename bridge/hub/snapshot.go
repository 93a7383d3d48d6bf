package hub

import (
	"slices"
	"strings"
)

// LastValues keeps the newest frame per routing key (bridge/snapshot.Store). The hub calls
// Put for every published frame under its lock and Collect under the same lock, exclusively,
// so a snapshot holds exactly the events published before a subscription and the subscription
// exactly those after: none is in both, none in neither.
type LastValues interface {
	// Put makes f its routing key's newest frame.
	Put(f *Frame)
	// Collect appends the newest frame of every key matching filter, in any order.
	Collect(filter Filter, dst []*Frame) []*Frame
	// Partial reports whether keys may be missing (a restarted process, a stream replica
	// still reading its history).
	Partial() bool
}

// Snapshot is the newest event of every key a subscriber may read, at one position of the
// hub.
type Snapshot struct {
	// Frames are in routing-key order (byte order).
	Frames []*Frame
	// ID is the id of the position the snapshot reflects (the last event published before
	// it); a client resuming from it misses nothing. Empty when the hub has no position yet
	// (a stream replica before its first message).
	ID string
	// Partial is true when keys may be missing (LastValues.Partial).
	Partial bool

	pos    int64 // the position ID names
	hasPos bool
}

// Covers reports whether f is at or before the snapshot's position: its key's state is in the
// snapshot already (as f or a newer event), so f must not be delivered after it.
func (snap *Snapshot) Covers(f *Frame) bool { return snap.hasPos && f.Pos <= snap.pos }

// WithoutID returns the frame's encoding without its id line (a snapshot event must not move
// the client's last event id: see docs/bridge.md). It shares the frame's bytes.
func (f *Frame) WithoutID() []byte {
	b := f.Bytes
	if f.ID != "" && len(b) > len("id: ") && string(b[:len("id: ")]) == "id: " {
		for i, c := range b {
			if c == '\n' {
				return b[i+1:]
			}
		}
	}
	return b
}

// HasSnapshots reports whether the hub keeps a last-value store.
func (h *Hub) HasSnapshots() bool { return h.cfg.LastValues != nil }

// SubscribeSnapshot is Subscribe for a client that wants the current state first: when it
// starts without a cursor, or its cursor cannot be resumed (gap), it also gets the snapshot of
// its filter, taken under the same lock as the subscription, so live events are exactly those
// after it; a cursor that can be resumed is resumed instead (snapshot nil). Without a store
// it is Subscribe.
func (h *Hub) SubscribeSnapshot(filter Filter, cursor Cursor) (*Subscriber, *Gap, *Snapshot) {
	s, gap, snap := h.subscribe(filter, cursor, h.cfg.LastValues != nil)
	if snap != nil {
		sortByKey(snap.Frames)
	}
	return s, gap, snap
}

// Resync replaces what s missed with a snapshot, after the client was sent a gap: the frames
// s holds from before the snapshot's position are dropped (the snapshot has the newest of each
// key) and later ones are kept, and frames at or before that position that a stream reader
// still offers are skipped. It works for hub-fed and stream-reader subscribers. Without a
// store it returns nil and changes nothing.
func (h *Hub) Resync(s *Subscriber) *Snapshot {
	if h.cfg.LastValues == nil {
		return nil
	}
	h.mu.Lock()
	snap := h.snapshotLocked(s.filter)
	s.mu.Lock()
	if h.known {
		s.dropUpTo(h.last)
		s.skipUpTo = max(s.skipUpTo, h.last)
	}
	s.gap = nil // anything dropped so far was at or before the snapshot's position
	s.mu.Unlock()
	h.mu.Unlock()
	sortByKey(snap.Frames)
	return snap
}

// snapshotLocked collects the store's frames for filter; called with mu held exclusively, so
// no Publish runs.
func (h *Hub) snapshotLocked(filter Filter) *Snapshot {
	snap := &Snapshot{Frames: h.cfg.LastValues.Collect(filter, nil), Partial: h.cfg.LastValues.Partial()}
	if h.known && h.last >= 0 {
		snap.ID = formatID(h.cfg.IDs, h.cfg.Epoch, h.last)
		snap.pos, snap.hasPos = h.last, true
	}
	return snap
}

func sortByKey(frames []*Frame) {
	slices.SortFunc(frames, func(a, b *Frame) int { return strings.Compare(a.RoutingKey, b.RoutingKey) })
}

// dropUpTo removes buffered and backlog frames at or before pos, keeping the order of the
// others; called with s.mu held.
func (s *Subscriber) dropUpTo(pos int64) {
	kept := s.backlog[:0]
	for _, f := range s.backlog {
		if f.Pos > pos {
			kept = append(kept, f)
		}
	}
	clear(s.backlog[len(kept):])
	s.backlog = kept
	if len(kept) == 0 {
		s.backlog = nil
	}
	n := 0
	for i := 0; i < s.n; i++ {
		j := (s.head + i) % len(s.buf)
		f := s.buf[j]
		s.buf[j] = nil
		if f.Pos > pos {
			s.buf[(s.head+n)%len(s.buf)] = f
			n++
		}
	}
	s.n = n
}
