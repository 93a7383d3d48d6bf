package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync/atomic"
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
	s := &connSink{conn: conn, head: head.Bytes(), timeout: h.cfg.WriteTimeout, ctx: ctx}
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
type connSink struct {
	conn      net.Conn
	head      []byte // response head, sent with the first write
	timeout   time.Duration
	bufs      net.Buffers
	ctx       context.Context
	closeConn func()
	wake      atomic.Pointer[func()] // called after ctx is cancelled (wakeWhenGone)
	// deadline is the write deadline set on conn; it is moved only when less than half of
	// timeout is left (armDeadline).
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
	s.armDeadline()
	if s.head != nil {
		bufs := append(s.bufs[:0], s.head, b)
		s.head = nil
		return s.writeBufs(bufs)
	}
	_, err := s.conn.Write(b)
	return err == nil
}

// writeFrames writes the whole batch with one writev: a client that fell behind gets all its
// pending frames in one system call.
func (s *connSink) writeFrames(gap *hub.Gap, frames []*hub.Frame) bool {
	s.armDeadline()
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
	if len(bufs) == 1 {
		_, err := s.conn.Write(bufs[0])
		bufs[0] = nil
		s.bufs = bufs[:0]
		return err == nil
	}
	return s.writeBufs(bufs)
}

func (s *connSink) writeBuffers(bufs [][]byte) bool {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	all := s.bufs[:0]
	if s.head != nil {
		all = append(all, s.head)
		s.head = nil
	}
	return s.writeBufs(append(all, bufs...))
}

func (s *connSink) writeBufs(bufs net.Buffers) bool {
	v := bufs // WriteTo consumes its receiver; keep bufs to reuse its array
	_, err := v.WriteTo(s.conn)
	clear(bufs) // release frame references while waiting
	s.bufs = bufs[:0]
	return err == nil
}

// close stops watching and closes the connection.
func (s *connSink) close() { s.closeConn() }
