package hub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// OverflowPolicy says what a subscriber's full buffer does with one more event.
type OverflowPolicy int

const (
	// DropOldest drops the oldest buffered event and tells the client with a gap notice.
	DropOldest OverflowPolicy = iota
	// LastValue replaces the oldest buffered event of the same routing key (the client only
	// needs the newest status per key); without one it behaves like DropOldest.
	LastValue
	// Disconnect ends the subscription; the client reconnects with Last-Event-ID and resumes
	// from the replay ring or the stream.
	Disconnect
)

// ParseOverflowPolicy reads "dropOldest", "lastValue" or "disconnect".
func ParseOverflowPolicy(s string) (OverflowPolicy, error) {
	switch s {
	case "dropOldest":
		return DropOldest, nil
	case "lastValue":
		return LastValue, nil
	case "disconnect":
		return Disconnect, nil
	}
	return 0, fmt.Errorf("overflow policy %q: want dropOldest, lastValue or disconnect", s)
}

func (p OverflowPolicy) String() string {
	switch p {
	case LastValue:
		return "lastValue"
	case Disconnect:
		return "disconnect"
	}
	return "dropOldest"
}

// Drop reasons passed to Config.OnDrop (label values of the dropped metric).
const (
	DropReasonOverflow   = "overflow"   // dropOldest, or lastValue without an older event of the key
	DropReasonSuperseded = "superseded" // lastValue replaced an older event of the same key
)

// Filter holds, per template placeholder, the values a subscriber accepts; a nil entry
// accepts any value.
type Filter [][]string

// Matches reports whether placeholder values pass the filter.
func (f Filter) Matches(values []string) bool {
	for i, allowed := range f {
		if allowed == nil {
			continue
		}
		if i >= len(values) || !contains(allowed, values[i]) {
			return false
		}
	}
	return true
}

// Split returns the values accepted for placeholder i (nil: any) and whether another
// placeholder is filtered too.
func (f Filter) Split(i int) (values []string, others bool) {
	for j, allowed := range f {
		if j == i {
			values = allowed
		} else if allowed != nil {
			others = true
		}
	}
	return values, others
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Gap describes lost continuity that the client must be told about.
type Gap struct {
	// Reason is "overflow" (events dropped from a full buffer), "unknown_id" (the
	// Last-Event-ID is not one this bridge can place) or "expired" (older than the replay
	// window).
	Reason string
	// Dropped is how many events were dropped (overflow only).
	Dropped int
}

// Subscriber is one client's subscription: a bounded buffer of shared frames that the hub
// fills and the client's writer drains. Its methods are safe for concurrent use; none blocks
// on the client.
type Subscriber struct {
	hub    *Hub
	filter Filter
	// indexed is the placeholder the hub indexes this subscriber under, or -1 (unfiltered).
	indexed int
	notify  chan struct{}
	// onSignal, when set, is called instead of signalling notify (OnSignal).
	onSignal atomic.Pointer[func()]
	// space is signalled by Take for a stream reader blocked in OfferWait (nil for hub-fed
	// subscribers, which never wait).
	space chan struct{}

	mu sync.Mutex
	// buf is a ring holding up to limit frames. It starts empty and grows by doubling when
	// full, so an idle subscriber costs no buffer and a busy one reaches limit.
	buf       []*Frame
	limit     int
	head, n   int
	backlog   []*Frame // replayed frames, delivered before buf
	gap       *Gap
	closed    bool
	skipUpTo  int64 // frames at or below this position are not delivered (stream resume ahead)
	unsettled bool  // subscribed before the hub knew its first position; checked on first publish
	cursorPos int64
}

// Notify is signalled (non-blocking, capacity 1) whenever there may be something to Take.
func (s *Subscriber) Notify() <-chan struct{} { return s.notify }

// OnSignal makes every later signal call f instead of signalling Notify: a pool of writers
// schedules the subscriber's stream from f instead of a goroutine waiting on Notify. f must
// not block: it runs in Publish with the hub's lock held, and in Take with the subscriber's.
func (s *Subscriber) OnSignal(f func()) { s.onSignal.Store(&f) }

// Filter returns the subscriber's filter.
func (s *Subscriber) Filter() Filter { return s.filter }

// Take moves pending frames into dst[:0] and returns them in delivery order. A non-nil gap must
// be sent before the frames. closed reports that the hub ended the subscription (disconnect
// policy or hub closed); the writer then ends the stream.
func (s *Subscriber) Take(dst []*Frame) (frames []*Frame, gap *Gap, closed bool) {
	dst = dst[:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, nil, true
	}
	if len(s.backlog) > 0 {
		dst = append(dst, s.backlog...)
		s.backlog = nil
		if s.n > 0 || s.gap != nil {
			s.signal()
		}
		return dst, nil, false
	}
	gap, s.gap = s.gap, nil
	for i := 0; i < s.n; i++ {
		j := (s.head + i) % len(s.buf)
		dst = append(dst, s.buf[j])
		s.buf[j] = nil
	}
	s.head, s.n = 0, 0
	if s.space != nil {
		select {
		case s.space <- struct{}{}:
		default:
		}
	}
	return dst, gap, false
}

// OfferWait adds f to a stream subscriber's buffer, waiting while it is full: a client served
// by its own stream reader is flow-controlled instead of dropping. It returns ctx's error, or
// nil without adding when the subscriber is closed.
func (s *Subscriber) OfferWait(ctx context.Context, f *Frame) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil
		}
		if f.Pos <= s.skipUpTo {
			s.mu.Unlock()
			return nil // in the snapshot the client was sent (Resync)
		}
		if s.n < s.limit {
			s.push(f)
			s.mu.Unlock()
			s.signal()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// MarkGap makes the next Take report a gap with reason (e.g. the stream was truncated past the
// client's position).
func (s *Subscriber) MarkGap(reason string) {
	s.mu.Lock()
	if s.gap == nil {
		s.gap = &Gap{Reason: reason}
	}
	s.mu.Unlock()
	s.signal()
}

// Wake signals Notify without adding anything: the writer, which waits on Notify alone, then
// looks at its other conditions (client gone, drain, heartbeat due).
func (s *Subscriber) Wake() { s.signal() }

// Close ends the subscription; the writer sees closed from Take.
func (s *Subscriber) Close() { s.close() }

func (s *Subscriber) signal() {
	if f := s.onSignal.Load(); f != nil {
		(*f)()
		return
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// offer hands a frame to the subscriber. It never blocks; a full buffer applies the policy.
func (s *Subscriber) offer(f *Frame, policy OverflowPolicy, onDrop func(string, int)) {
	s.mu.Lock()
	if s.closed || f.Pos <= s.skipUpTo {
		s.mu.Unlock()
		return
	}
	if s.n == s.limit {
		switch policy {
		case Disconnect:
			s.closed = true
			s.buf, s.backlog, s.head, s.n = nil, nil, 0, 0
			s.mu.Unlock()
			s.hub.cfg.OnDisconnect()
			s.signal()
			return
		case LastValue:
			if s.removeOldestWithKey(f.RoutingKey) {
				s.push(f)
				s.mu.Unlock()
				onDrop(DropReasonSuperseded, 1)
				s.signal()
				return
			}
		}
		s.buf[s.head] = nil
		s.head = (s.head + 1) % len(s.buf)
		s.n--
		if s.gap == nil {
			s.gap = &Gap{Reason: DropReasonOverflow}
		}
		s.gap.Dropped++
		s.push(f)
		s.mu.Unlock()
		onDrop(DropReasonOverflow, 1)
		s.signal()
		return
	}
	s.push(f)
	s.mu.Unlock()
	s.signal()
}

// push appends f; the caller checked s.n < s.limit or made room.
func (s *Subscriber) push(f *Frame) {
	if s.n == len(s.buf) {
		s.grow()
	}
	s.buf[(s.head+s.n)%len(s.buf)] = f
	s.n++
}

// grow doubles the ring (at least 4, at most limit), keeping the frames in order.
func (s *Subscriber) grow() {
	size := min(max(4, 2*len(s.buf)), s.limit)
	buf := make([]*Frame, size)
	for i := 0; i < s.n; i++ {
		buf[i] = s.buf[(s.head+i)%len(s.buf)]
	}
	s.buf, s.head = buf, 0
}

// removeOldestWithKey removes the oldest buffered frame with routing key key, keeping the
// order of the others.
func (s *Subscriber) removeOldestWithKey(key string) bool {
	size := len(s.buf)
	for i := 0; i < s.n; i++ {
		if s.buf[(s.head+i)%size].RoutingKey != key {
			continue
		}
		for k := i; k < s.n-1; k++ {
			s.buf[(s.head+k)%size] = s.buf[(s.head+k+1)%size]
		}
		s.buf[(s.head+s.n-1)%size] = nil
		s.n--
		return true
	}
	return false
}

// close ends the subscription from the hub's side.
func (s *Subscriber) close() {
	s.mu.Lock()
	s.closed = true
	s.buf, s.backlog, s.head, s.n = nil, nil, 0, 0
	s.mu.Unlock()
	s.signal()
}
