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

// vectorWriter writes with writev on a raw descriptor for a pool writer without waiting; one
// per writer, so a write allocates nothing (fn is made once).
type vectorWriter struct {
	bufs [][]byte // in: what to write; out: what the socket did not take
	err  error
	fn   func(fd uintptr) bool
}

func newVectorWriter() *vectorWriter {
	w := &vectorWriter{}
	w.fn = func(fd uintptr) bool {
		w.bufs, _, w.err = writeSome(fd, w.bufs)
		return true // never wait for the socket: the caller parks the rest (pending)
	}
	return w
}

// writeSome writes bufs to fd with writev calls of at most maxIovecs buffers until all is
// written (rest empty), the socket is full (full: rest is what it did not take) or the write
// fails. bufs' elements are consumed.
func writeSome(fd uintptr, bufs [][]byte) (rest [][]byte, full bool, err error) {
	for len(bufs) > 0 {
		var n int
		for {
			n, err = unix.Writev(int(fd), bufs[:min(len(bufs), maxIovecs)])
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		bufs = consume(bufs, max(n, 0))
		if errors.Is(err, unix.EAGAIN) {
			return bufs, true, nil
		}
		if err != nil {
			return bufs, false, err
		}
	}
	return nil, false, nil
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
		var full bool
		bufs, full, failed = writeSome(fd, bufs)
		return !full // full: the runtime's poller calls again once the socket is writable
	})
	return err == nil && failed == nil
}

// writeNow writes bufs without waiting, until all is written or the socket is full; the rest
// is kept in s.pending (the slices, not copies: frames are immutable) and more reports it. ok
// is false when the connection failed. bufs' elements are consumed.
func (s *connSink) writeNow(w *vectorWriter, bufs [][]byte) (more, ok bool) {
	w.bufs = bufs
	err := s.raw.Write(w.fn)
	rest := w.bufs
	w.bufs = nil
	if err != nil || w.err != nil {
		return false, false
	}
	if len(rest) == 0 {
		return false, true
	}
	s.pending = append(s.pending[:0], rest...)
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
