package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

// streamSink is where a stream's bytes go: net/http's ResponseWriter, or the raw connection
// once the stream has been detached from net/http. Writes carry a write deadline; false means
// the client is gone or too slow.
type streamSink interface {
	// context is done when the client has gone.
	context() context.Context
	// write writes b and pushes it to the client.
	write(b []byte) bool
	// writeFrames writes a gap notice (when gap is set) and frames as one batch.
	writeFrames(gap *hub.Gap, frames []*hub.Frame) bool
	// writeBuffers writes bufs as one batch (a snapshot); it keeps no reference to them.
	writeBuffers(bufs [][]byte) bool
	// close ends the response.
	close()
	// wakeWhenGone makes the client's hang-up (context done) call wake; stop deregisters.
	wakeWhenGone(wake func()) (stop func())
}

// responseSink streams through net/http (HTTP/2, or a ResponseWriter that cannot hijack).
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	ctx     context.Context
	timeout time.Duration
}

func (s *responseSink) context() context.Context { return s.ctx }

func (s *responseSink) write(b []byte) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.w.Write(b); err != nil {
		return false
	}
	return s.rc.Flush() == nil
}

func (s *responseSink) writeFrames(gap *hub.Gap, frames []*hub.Frame) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if gap != nil {
		if _, err := s.w.Write(appendGap(nil, gap)); err != nil {
			return false
		}
	}
	for _, f := range frames {
		if _, err := s.w.Write(f.Bytes); err != nil {
			return false
		}
	}
	return s.rc.Flush() == nil
}

func (s *responseSink) writeBuffers(bufs [][]byte) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	for _, b := range bufs {
		if _, err := s.w.Write(b); err != nil {
			return false
		}
	}
	return s.rc.Flush() == nil
}

func (s *responseSink) close() {}

func (s *responseSink) wakeWhenGone(wake func()) func() {
	stop := context.AfterFunc(s.ctx, wake)
	return func() { stop() }
}

// detach takes an admitted HTTP/1 stream out of net/http: it hijacks the connection before
// any byte of the response was written, so the stream can continue in a goroutine of its own
// while net/http's connection goroutine (whose stack grew while parsing the request and
// verifying the token), its 4 KiB read and write buffers, the chunking buffer and the request
// are all released: an idle stream then costs a small goroutine stack, a subscription and the
// socket. The response is a close-delimited HTTP/1.1 body (Connection: close, no chunking),
// which every EventSource and proxy reads; headers set earlier on w (CORS) are kept.
// It returns false, with nothing written, when the connection cannot be hijacked (HTTP/2,
// test recorders); the caller then streams through w.
func (h *Handler) detach(w http.ResponseWriter, r *http.Request) (streamSink, bool) {
	if r.ProtoMajor != 1 {
		return nil, false
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, false
	}
	// net/http set deadlines for reading the request; the stream sets its own write deadlines.
	_ = conn.SetDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache, no-transform")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&head)
	head.WriteString("\r\n")

	ctx, cancel := context.WithCancel(context.Background())
	h.watcherOnce.Do(func() { h.watcher = newCloseWatcher(h.drain) })
	s := &connSink{conn: conn, raw: nonblockingConn(conn), slots: h.writeSlots, head: head.Bytes(), timeout: h.cfg.WriteTimeout, ctx: ctx}
	s.closeConn = h.watcher.watch(conn, func() {
		cancel()
		if wake := s.wake.Load(); wake != nil {
			(*wake)()
		}
	})
	return s, true
}

// connSink streams on a hijacked connection. The handler's close watcher cancels ctx as soon
// as the client hangs up (the request was read completely; a stream expects nothing more).
//
// It writes in one of two ways. Blocking (the opening, a stream's last words, and streams run
// by their own goroutine): each write waits, up to the write timeout, until the kernel took
// it. Queued (a stream run by the writer pool): while queue is set, writes only append their
// buffers to *queue; the pool's writer then writes them all with non-blocking writev calls
// (writeNow), and what the socket cannot take now stays in pending for a blocking write
// (writePending) in a goroutine of its own.
type connSink struct {
	conn      net.Conn
	raw       syscall.RawConn // nil: no non-blocking writes (not a socket, or not Linux)
	slots     chan struct{}   // the handler's write slots (writeFair)
	head      []byte          // response head, sent with the first write
	timeout   time.Duration
	bufs      net.Buffers
	queue     *[][]byte   // set while the writer pool runs the stream
	pending   net.Buffers // queued bytes the socket did not take yet; written before anything else
	ctx       context.Context
	closeConn func()
	wake      atomic.Pointer[func()] // called after ctx is cancelled (wakeWhenGone)
	// deadline is the write deadline set on conn; it is moved only when less than half of
	// timeout is left (armDeadline). Zero while the writer pool runs the stream: its writes
	// never wait.
	deadline time.Time
}

func (s *connSink) context() context.Context { return s.ctx }

// wakeWhenGone: the close watcher's hang-up callback cancels ctx, then calls wake.
func (s *connSink) wakeWhenGone(wake func()) func() {
	s.wake.Store(&wake)
	if s.ctx.Err() != nil { // gone before wake was stored
		wake()
	}
	return func() { s.wake.Store(nil) }
}

// armDeadline makes the next write fail when it cannot complete within between timeout/2 and
// timeout: re-arming the deadline (a timer update in the runtime's netpoller) only when less
// than half of it is left keeps it off the per-delivery cost.
func (s *connSink) armDeadline() {
	now := time.Now()
	if s.deadline.Sub(now) >= s.timeout/2 {
		return
	}
	s.deadline = now.Add(s.timeout)
	_ = s.conn.SetWriteDeadline(s.deadline)
}

func (s *connSink) write(b []byte) bool {
	bufs := s.bufs[:0]
	if s.head != nil {
		bufs = append(bufs, s.head)
		s.head = nil
	}
	return s.send(append(bufs, b), false)
}

// writeFrames writes the whole batch with one writev: a client that fell behind gets all its
// pending frames in one system call.
func (s *connSink) writeFrames(gap *hub.Gap, frames []*hub.Frame) bool {
	bufs := s.bufs[:0]
	if s.head != nil {
		bufs = append(bufs, s.head)
		s.head = nil
	}
	if gap != nil {
		bufs = append(bufs, appendGap(nil, gap))
	}
	for _, f := range frames {
		bufs = append(bufs, f.Bytes)
	}
	return s.send(bufs, false)
}

func (s *connSink) writeBuffers(bufs [][]byte) bool {
	all := s.bufs[:0]
	if s.head != nil {
		all = append(all, s.head)
		s.head = nil
	}
	return s.send(append(all, bufs...), true)
}

// send queues bufs (the writer pool runs the stream) or writes them, after anything pending,
// waiting up to the write timeout (from now when fresh is set, as for each part of a large
// snapshot). It keeps no reference to bufs' elements once written; bufs' array is reused.
func (s *connSink) send(bufs net.Buffers, fresh bool) bool {
	if s.queue != nil {
		*s.queue = append(*s.queue, bufs...)
		clear(bufs)
		s.bufs = bufs[:0]
		return true
	}
	if fresh {
		s.deadline = time.Now().Add(s.timeout)
		_ = s.conn.SetWriteDeadline(s.deadline)
	} else {
		s.armDeadline()
	}
	if len(s.pending) > 0 && !s.writePending() {
		return false
	}
	ok := s.writeWaiting(bufs, s.slots)
	clear(bufs) // release frame references while waiting
	s.bufs = bufs[:0]
	return ok
}

// writeWaiting writes bufs, waiting for the client up to the write deadline: with writeFair
// on a socket the pool can write (raw; slots: see there), otherwise through conn.
func (s *connSink) writeWaiting(bufs net.Buffers, slots chan struct{}) bool {
	if s.raw != nil {
		return s.writeFair(bufs, slots)
	}
	var err error
	if len(bufs) == 1 {
		_, err = s.conn.Write(bufs[0])
	} else {
		v := bufs // WriteTo consumes its receiver
		_, err = v.WriteTo(s.conn)
	}
	return err == nil
}

// writePending writes what a non-blocking write left, in pieces of at most pendingPiece
// buffers, each of which must be taken within the write timeout (as each part of a large
// snapshot written directly).
func (s *connSink) writePending() bool {
	for len(s.pending) > 0 {
		piece := s.pending[:min(len(s.pending), pendingPiece)]
		s.deadline = time.Now().Add(s.timeout)
		_ = s.conn.SetWriteDeadline(s.deadline)
		// No write slot: this is the pool's own work, which a slot would queue behind every
		// opening in progress (a live stream would then drop events while it waits).
		ok := s.writeWaiting(piece, nil)
		clear(piece)
		s.pending = s.pending[len(piece):]
		if !ok {
			s.pending = nil
			return false
		}
	}
	s.pending = nil
	return true
}

// pendingPiece is how many buffers of pending one write-timeout covers: a snapshot batch
// (snapshotBatch events, two buffers each).
const pendingPiece = 2 * snapshotBatch

// nonblocking reports whether the writer pool can run this stream.
func (s *connSink) nonblocking() bool { return s.raw != nil }

// close stops watching and closes the connection.
func (s *connSink) close() { s.closeConn() }
