package server

import (
	"errors"
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most buffers one writev takes (Linux's IOV_MAX).
const maxIovecs = 1024

// nonblockingConn returns conn's raw descriptor access when the pool may write to it without
// waiting (a socket, on Linux); nil otherwise.
func nonblockingConn(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// nonblocking reports whether the writer pool can run this stream.
func (s *connSink) nonblocking() bool { return s.raw != nil }

// vectorWriter issues writev on a raw descriptor for the writer pool; one per pool writer, so
// a write allocates nothing.
type vectorWriter struct {
	bufs [][]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func newVectorWriter() *vectorWriter {
	w := &vectorWriter{}
	w.fn = func(fd uintptr) bool {
		w.n, w.err = writev(fd, w.bufs)
		return true // never wait for the socket: the caller parks the rest (pending)
	}
	return w
}

// writev writes bufs (at most maxIovecs) to fd once, retrying on EINTR; n is 0 on error.
func writev(fd uintptr, bufs [][]byte) (n int, err error) {
	for {
		n, err = unix.Writev(int(fd), bufs)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return max(n, 0), err
}

// writeFair writes bufs, waiting for the client up to the write deadline. With slots, it
// holds one of them only while the kernel takes bytes: at most cap(slots) goroutines write at
// once, so the openings with their snapshots and the last words cannot crowd the pool's
// writers out of the CPU however many streams open at once, and a client that does not read
// holds no slot while it is waited for. bufs' elements are consumed.
func (s *connSink) writeFair(bufs [][]byte, slots chan struct{}) bool {
	var failed error
	err := s.raw.Write(func(fd uintptr) bool {
		if slots != nil {
			slots <- struct{}{}
			defer func() { <-slots }()
			// A waiter woken by a slot's release runs next on the releasing P, and so would
			// the one it wakes: a chain of openings that keeps the pool's writers waiting.
			// Yielding here puts it behind them.
			runtime.Gosched()
		}
		for len(bufs) > 0 {
			n, err := writev(fd, bufs[:min(len(bufs), maxIovecs)])
			if errors.Is(err, unix.EAGAIN) {
				return false // the runtime's poller calls again once the socket is writable
			}
			if err != nil {
				failed = err
				return true
			}
			bufs = consume(bufs, n)
		}
		return true
	})
	return err == nil && failed == nil
}

// writeNow writes bufs with writev calls that never wait, until all is written or the socket
// is full; the rest is kept in s.pending (the slices, not copies: frames are immutable) and
// more reports it. ok is false when the connection failed. bufs' elements are consumed.
func (s *connSink) writeNow(w *vectorWriter, bufs [][]byte) (more, ok bool) {
	for len(bufs) > 0 {
		w.bufs = bufs[:min(len(bufs), maxIovecs)]
		if err := s.raw.Write(w.fn); err != nil {
			return false, false
		}
		w.bufs = nil
		bufs = consume(bufs, w.n)
		if w.err != nil {
			if errors.Is(w.err, unix.EAGAIN) {
				break
			}
			return false, false
		}
	}
	if len(bufs) == 0 {
		return false, true
	}
	s.pending = append(s.pending[:0], bufs...)
	return true, true
}

// consume drops the first n bytes of bufs.
func consume(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}
