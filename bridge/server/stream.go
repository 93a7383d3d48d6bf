package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// stream is an admitted stream once its opening is written: its subscription, its sink and
// what wakes it. One goroutine at a time runs it: its own (run), or, for a detached
// connection, a writer of the handler's pool (writers.go), which keeps no goroutine for a
// stream that has nothing to write.
type stream struct {
	h     *Handler
	sink  streamSink
	st    streamStart
	s     *hub.Subscriber
	ended <-chan struct{} // EndStreams' signal when the stream started

	heartbeatDue, expired atomic.Bool
	heartbeat, expiry     *time.Timer
	stopGone, stopWaking  func()
	unsubscribe           func() // ends the subscription (and the stream reader, if any)

	sched atomic.Int32 // the writer pool's scheduling state (writers.go)
}

// endReason says why a stream ends; the zero value: it goes on.
type endReason int

const (
	goOn       endReason = iota
	endGone              // the client left or a write failed: nothing more to write
	endDrain             // the handler drains: flush, then a jittered retry: hint
	endEnded             // EndStreams: flush, then a short retry: hint
	endExpired           // the credentials expired
	endClosed            // the hub ended the subscription (overflow policy, stream reader)
)

// serve subscribes an admitted stream (limiter slot and h.active already taken, released when
// it ends), writes its opening and hands it to the writer pool, or streams to sink from this
// goroutine when the connection cannot be written without blocking (HTTP/2, a stream reader,
// not Linux).
func (h *Handler) serve(sink streamSink, st streamStart) {
	x := &stream{h: h, sink: sink, st: st}
	cursor := hub.ParseCursor(h.cfg.Hub.Scheme(), st.cursorID)
	var (
		gap       *hub.Gap
		snap      *hub.Snapshot
		hasReader bool // a stream reader fills x.s (OfferWait); its end waits for the reader
	)
	if h.cfg.StreamReader != nil && h.cfg.Hub.NeedsStreamRead(cursor) && h.acquireReader() {
		x.s = h.cfg.Hub.NewStreamSubscriber(st.filter)
		hasReader = true
		ctx, cancel := context.WithCancel(sink.context())
		var reader sync.WaitGroup
		reader.Add(1)
		go func() {
			defer reader.Done()
			h.readStream(ctx, st.path, x.s, cursor.Pos)
		}()
		x.unsubscribe = func() {
			cancel()
			reader.Wait()
			h.releaseReader()
		}
	} else {
		if st.snapshot {
			x.s, gap, snap = h.cfg.Hub.SubscribeSnapshot(st.filter, cursor)
		} else {
			x.s, gap = h.cfg.Hub.Subscribe(st.filter, cursor)
		}
		x.unsubscribe = func() { h.cfg.Hub.Unsubscribe(x.s) }
	}
	h.cfg.Metrics.Clients.Inc()

	if !x.open(gap, snap) {
		x.close()
		return
	}
	if cs, ok := sink.(*connSink); ok && !hasReader && cs.nonblocking() {
		h.writers().add(x)
		return
	}
	x.run()
	x.close()
}

// open writes the stream's opening (comment, retry: hint, a gap, the snapshot) and arranges
// for everything that needs the stream to wake it: the client hanging up, Drain and
// EndStreams, the heartbeat, expiring credentials. It returns false when the client is gone.
func (x *stream) open(gap *hub.Gap, snap *hub.Snapshot) bool {
	h := x.h
	x.ended = h.endSignal()
	out := sse.AppendComment(make([]byte, 0, 128), "ok")
	out = sse.AppendRetry(out, h.cfg.Retry.Milliseconds())
	if gap != nil {
		out = appendGap(out, gap)
	}
	if !x.sink.write(out) {
		return false
	}
	if snap != nil && !h.writeSnapshot(x.sink, snap) {
		return false
	}
	// Whoever runs the stream waits for one signal, the subscriber's: everything else that
	// needs it wakes it through the same signal and is checked after each wake-up (step).
	x.stopGone = x.sink.wakeWhenGone(x.s.Wake)
	x.stopWaking = h.wakers.add(x.s)
	x.heartbeat = time.AfterFunc(h.cfg.Heartbeat, func() {
		x.heartbeatDue.Store(true)
		x.s.Wake()
	})
	if !x.st.expiresAt.IsZero() {
		x.expiry = time.AfterFunc(time.Until(x.st.expiresAt), func() {
			x.expired.Store(true)
			x.s.Wake()
		})
	}
	return true
}

// heartbeatComment is the empty comment written when nothing else was for a heartbeat
// interval; shared (never written to).
var heartbeatComment = sse.AppendComment(nil, "")

// step handles one wake-up: it reports why the stream ends, or writes the heartbeat and what
// the subscription holds (frames is scratch space, returned emptied for reuse). It never waits
// for anything but the sink's writes.
func (x *stream) step(frames []*hub.Frame) (endReason, []*hub.Frame) {
	h := x.h
	switch {
	case x.sink.context().Err() != nil:
		return endGone, frames
	case isClosed(h.drain):
		return endDrain, frames
	case isClosed(x.ended):
		return endEnded, frames
	case x.expired.Load():
		return endExpired, frames
	}
	if x.heartbeatDue.Swap(false) {
		if !x.sink.write(heartbeatComment) {
			return endGone, frames
		}
		x.heartbeat.Reset(h.cfg.Heartbeat)
	}
	frames, gap, closed := x.s.Take(frames)
	if closed {
		return endClosed, frames
	}
	if len(frames) == 0 && gap == nil {
		return goOn, frames // woken for something else
	}
	ok := h.send(x.sink, x.st.snapshot, x.s, gap, frames)
	clear(frames) // release frame references while waiting
	if !ok {
		return endGone, frames[:0]
	}
	return goOn, frames[:0]
}

// finish writes the stream's last words for why (blocking writes, bounded by the write
// timeout): what was handed to it before a drain or EndStreams, and a retry: hint.
func (x *stream) finish(why endReason) {
	h := x.h
	var out []byte
	switch why {
	case endDrain:
		deadline := h.drainDeadline
		if deadline.IsZero() {
			deadline = time.Now().Add(h.cfg.WriteTimeout)
		}
		if !h.flush(x.sink, x.st.snapshot, x.s, nil, deadline) {
			return
		}
		out = sse.AppendComment(out, "draining")
		out = sse.AppendRetry(out, h.jitteredRetry().Milliseconds())
	case endEnded:
		if !h.flush(x.sink, x.st.snapshot, x.s, nil, time.Now().Add(h.cfg.WriteTimeout)) {
			return
		}
		out = sse.AppendComment(out, "broker unreachable from this replica; reconnect with Last-Event-ID")
		retry := h.cfg.Retry/6 + time.Duration(h.cfg.Rand()*float64(h.cfg.Retry/3))
		out = sse.AppendRetry(out, retry.Milliseconds())
	case endExpired:
		// The client reconnects after the hint with fresh credentials, or gets 401.
		out = sse.AppendComment(out, "credentials expired")
		out = sse.AppendRetry(out, h.cfg.Retry.Milliseconds())
	case endClosed:
		h.cfg.Logger.Debug("subscription ended by the bridge (overflow policy or stream reader)", "path", x.st.path)
		out = sse.AppendComment(out, "subscription ended; reconnect with Last-Event-ID")
		out = sse.AppendRetry(out, h.jitteredRetry().Milliseconds())
	default:
		return
	}
	x.sink.write(out)
}

// run streams from the calling goroutine until the stream ends (the caller closes it): it
// waits on the subscriber's Notify alone (a receive on one channel, not a select over six,
// per delivery).
func (x *stream) run() {
	var frames []*hub.Frame // grows to the largest batch a Take returned
	for range x.s.Notify() {
		var why endReason
		if why, frames = x.step(frames); why != goOn {
			x.finish(why)
			return
		}
	}
}

// close releases everything the stream holds, in the reverse order of taking it: timers and
// wake-ups, the clients gauge, the subscription, the connection, the limiter slot, and last
// h.active, which Drain waits for.
func (x *stream) close() {
	x.stopSignals()
	h := x.h
	h.cfg.Metrics.Clients.Dec()
	x.unsubscribe()
	x.sink.close()
	h.limiter.release(x.st.tenants, x.st.subject)
	h.active.Done()
}

// stopSignals stops what open arranged to wake the stream.
func (x *stream) stopSignals() {
	if x.expiry != nil {
		x.expiry.Stop()
	}
	if x.heartbeat != nil {
		x.heartbeat.Stop()
	}
	if x.stopWaking != nil {
		x.stopWaking()
	}
	if x.stopGone != nil {
		x.stopGone()
	}
}

// flush writes everything already handed to s — replayed backlog, buffered events, a pending
// gap — batch after batch until s is empty or deadline passes (these events were acked: cut
// here, a classic/quorum client could only get them back from the replay ring). It returns
// false when the client is gone.
func (h *Handler) flush(sink streamSink, snapshot bool, s *hub.Subscriber, frames []*hub.Frame, deadline time.Time) bool {
	for time.Now().Before(deadline) {
		var (
			gap    *hub.Gap
			closed bool
		)
		frames, gap, closed = s.Take(frames)
		if closed || (len(frames) == 0 && gap == nil) {
			return true
		}
		if !h.send(sink, snapshot, s, gap, frames) {
			return false
		}
	}
	return true
}

// send writes what a Take returned. For a snapshot client a gap is followed by the snapshot
// (hub.Resync), and the taken frames it covers are left out: the client rebuilds the exact
// current state instead of refetching it.
func (h *Handler) send(sink streamSink, snapshot bool, s *hub.Subscriber, gap *hub.Gap, frames []*hub.Frame) bool {
	if gap == nil || !snapshot {
		return h.writeFrames(sink, gap, frames)
	}
	snap := h.cfg.Hub.Resync(s)
	if !h.writeFrames(sink, gap, nil) || !h.writeSnapshot(sink, snap) {
		return false
	}
	live := frames[:0]
	for _, f := range frames {
		if !snap.Covers(f) {
			live = append(live, f)
		}
	}
	clear(frames[len(live):])
	return len(live) == 0 || h.writeFrames(sink, nil, live)
}

// writeFrames writes a gap notice (when gap is set) and frames as one batch, then counts them.
func (h *Handler) writeFrames(sink streamSink, gap *hub.Gap, frames []*hub.Frame) bool {
	if !sink.writeFrames(gap, frames) {
		return false
	}
	now := time.Now()
	h.cfg.Metrics.Delivered.Add(float64(len(frames)))
	for _, f := range frames {
		if !f.Published.IsZero() {
			h.cfg.Metrics.Latency.Observe(now.Sub(f.Published).Seconds())
		}
	}
	return true
}
