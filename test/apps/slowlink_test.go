package apps

import (
	"io"
	"net"
	"sync"
	"testing"
)

// slowLink is a TCP proxy between `next start` and the bridge, listening on the address compiled
// into the Next.js build. While paused it stops reading from the bridge, so the bridge's writes
// to the page's stream block once the socket buffers are full, as for a slow client: the
// bridge's per-client buffer overflows.
type slowLink struct {
	upstream string
	listener net.Listener

	mu     sync.Mutex
	resume chan struct{} // closed when unpaused; nil: not paused
	conns  map[net.Conn]bool
}

// startSlowLink listens on addr and forwards every connection to upstream until the test ends.
func startSlowLink(t *testing.T, addr, upstream string) *slowLink {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("slow link on %s: %v", addr, err)
	}
	link := &slowLink{upstream: upstream, listener: l, conns: map[net.Conn]bool{}}
	go link.accept()
	t.Cleanup(link.close)
	return link
}

func (l *slowLink) accept() {
	for {
		down, err := l.listener.Accept()
		if err != nil {
			return // closed
		}
		up, err := net.Dial("tcp", l.upstream)
		if err != nil {
			down.Close()
			continue
		}
		if !l.track(down, up) {
			return
		}
		go func() {
			_, _ = io.Copy(up, down) // requests are never held back
			up.Close()
			down.Close()
		}()
		go func() {
			l.copyResponses(down, up)
			up.Close()
			down.Close()
		}()
	}
}

// track records the pair for close; false when the link is already closed.
func (l *slowLink) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		l.conns[c] = true
	}
	return true
}

// copyResponses copies from the bridge to `next start`, waiting before each read while paused.
func (l *slowLink) copyResponses(down, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		l.mu.Lock()
		resume := l.resume
		l.mu.Unlock()
		if resume != nil {
			<-resume
		}
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := down.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed
		}
	}
}

// pause stops reading from the bridge.
func (l *slowLink) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resume == nil {
		l.resume = make(chan struct{})
	}
}

// unpause reads from the bridge again.
func (l *slowLink) unpause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resume != nil {
		close(l.resume)
		l.resume = nil
	}
}

func (l *slowLink) close() {
	l.listener.Close()
	l.unpause()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
	l.conns = nil
}
