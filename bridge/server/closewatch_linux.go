package server

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// epollWatcher notices detached connections whose client hung up, for all streams of a handler,
// from one goroutine blocked in epoll_wait: an idle stream then needs no goroutine (and stack)
// of its own just to read the connection. Each connection is registered for hang-up and error
// only (EPOLLRDHUP, one-shot); a stream has nothing to read after its request.
type epollWatcher struct {
	epfd int
	stop <-chan struct{}

	mu    sync.Mutex
	conns map[int32]watchedConn // by file descriptor
	gen   uint32
}

type watchedConn struct {
	gen    uint32 // tells a registration from a later one reusing the descriptor
	onGone func()
}

const epollWaitTimeoutMs = 500 // how often the loop checks stop

// newCloseWatcher returns the platform's watcher; on Linux one epoll set. stop ends its loop
// (the handler's drain: streams end by themselves from then on).
func newCloseWatcher(stop <-chan struct{}) closeWatcher {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return goroutineWatcher{}
	}
	w := &epollWatcher{epfd: epfd, stop: stop, conns: map[int32]watchedConn{}}
	go w.loop()
	return w
}

// watch registers conn; onGone runs (once, from the watcher's goroutine) when the client hangs
// up. closeConn deregisters conn, then closes it.
func (w *epollWatcher) watch(conn net.Conn, onGone func()) (closeConn func()) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return goroutineWatcher{}.watch(conn, onGone)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return goroutineWatcher{}.watch(conn, onGone)
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	if fd < 0 {
		return goroutineWatcher{}.watch(conn, onGone)
	}
	w.mu.Lock()
	w.gen++
	gen := w.gen
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR | syscall.EPOLLONESHOT, Fd: int32(fd), Pad: int32(gen)}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.mu.Unlock()
		return goroutineWatcher{}.watch(conn, onGone)
	}
	w.conns[int32(fd)] = watchedConn{gen: gen, onGone: onGone}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		if c, ok := w.conns[int32(fd)]; ok && c.gen == gen {
			delete(w.conns, int32(fd))
		}
		// The descriptor is still open, so this removes our registration and nothing else.
		_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
		w.mu.Unlock()
		_ = conn.Close()
	}
}

func (w *epollWatcher) loop() {
	defer syscall.Close(w.epfd)
	events := make([]syscall.EpollEvent, 128)
	var gone []func()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, err := syscall.EpollWait(w.epfd, events, epollWaitTimeoutMs)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Not expected; keep serving without busy-looping.
			time.Sleep(epollWaitTimeoutMs * time.Millisecond)
			continue
		}
		gone = gone[:0]
		w.mu.Lock()
		for _, ev := range events[:n] {
			if c, ok := w.conns[ev.Fd]; ok && c.gen == uint32(ev.Pad) {
				delete(w.conns, ev.Fd)
				gone = append(gone, c.onGone)
			}
		}
		w.mu.Unlock()
		for _, f := range gone {
			f()
		}
	}
}
