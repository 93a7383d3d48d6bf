package chaos

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy between a bridge and the broker that breaks connections the two ways a
// network does:
//   - Reset closes every connection at once with an RST towards both ends (a load balancer or
//     a NAT forgetting the flow); new connections pass immediately.
//   - Blackhole stops moving bytes in both directions, on existing and new connections alike,
//     without closing anything, until Heal (a partition: packets are lost, nobody is told).
//     Bytes sent meanwhile wait in the socket buffers and move on at Heal, like retransmitted
//     segments; an end that gave up and closed during the blackhole is noticed at Heal and the
//     close is passed on to the other end.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	conns  map[*proxiedConn]struct{}
	healed chan struct{} // closed while traffic flows; a fresh open channel during a blackhole
	closed bool
	wg     sync.WaitGroup
}

type proxiedConn struct {
	client, upstream *net.TCPConn
}

// NewProxy listens on a free loopback port and forwards each connection to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	healed := make(chan struct{})
	close(healed)
	p := &Proxy{target: target, ln: ln, conns: map[*proxiedConn]struct{}{}, healed: healed}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c.(*net.TCPConn))
	}
}

// serve connects c to the target once traffic may flow and copies both ways until either end
// closes, then closes the other.
func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	if !p.waitFlowing() {
		client.Close()
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close() // the broker is down: the dialler sees its connection closed
		return
	}
	pc := &proxiedConn{client: client, upstream: up.(*net.TCPConn)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.reset()
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()

	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.copy(pc.upstream, pc.client) }()
	go func() { defer both.Done(); p.copy(pc.client, pc.upstream) }()
	both.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// copy moves bytes from src to dst, holding them while the proxy is blackholed; when either
// side fails it closes both, so the other copy ends too.
func (p *Proxy) copy(dst, src *net.TCPConn) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		if !p.waitFlowing() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitFlowing() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitFlowing blocks while the proxy is blackholed; it returns false when the proxy closed.
func (p *Proxy) waitFlowing() bool {
	p.mu.Lock()
	healed, closed := p.healed, p.closed
	p.mu.Unlock()
	if closed {
		return false
	}
	<-healed
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed
}

// Blackhole stops all traffic through the proxy until Heal.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
		p.healed = make(chan struct{})
	default: // already blackholed
	}
}

// Heal lets traffic flow again after Blackhole.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
	default:
		close(p.healed)
	}
}

// Reset closes every open connection with an RST to both ends and returns how many it cut.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	conns := make([]*proxiedConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.reset()
	}
	return len(conns)
}

// reset closes both ends with SO_LINGER 0, which sends an RST instead of a FIN.
func (pc *proxiedConn) reset() {
	for _, c := range []*net.TCPConn{pc.client, pc.upstream} {
		_ = c.SetLinger(0)
		_ = c.Close()
	}
}

// Close stops listening, resets every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	select {
	case <-p.healed:
	default:
		close(p.healed)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.Reset()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
