package app

import (
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards loopback TCP connections to target. Blackhole stops forwarding in both
// directions without closing anything, like a network partition that sends no RST: the
// connections open then, and the ones accepted meanwhile, carry nothing ever again. Restore
// forwards new connections again.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu         sync.Mutex
	generation int // Restore starts a new one; a connection forwards only in its own
	blackholed bool
	conns      []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

// Addr is the proxy's listening address.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Blackhole stops all forwarding, silently.
func (p *tcpProxy) Blackhole() {
	p.mu.Lock()
	p.blackholed = true
	p.mu.Unlock()
}

// Restore forwards connections accepted from now on; blackholed ones stay dead.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	p.blackholed = false
	p.generation++
	p.mu.Unlock()
}

func (p *tcpProxy) forwards(generation int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.blackholed && generation == p.generation
}

func (p *tcpProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		generation := p.generation
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.pipe(client, server, generation)
		go p.pipe(server, client, generation)
	}
}

// pipe copies from src to dst while the connection's generation forwards, and discards what
// it reads otherwise (nothing arrives, nothing is closed).
func (p *tcpProxy) pipe(src, dst net.Conn, generation int) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.forwards(generation) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if p.forwards(generation) {
				_ = dst.Close()
			}
			return
		}
	}
}
