package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SentField is the JSON field of a benchmark event's payload holding its send time in Unix
// nanoseconds; receivers compute publish→receive latency from it.
const SentField = `"sent_ns":`

// SourceAddrs returns n loopback source addresses 127.0.0.2 ... so that connections to one
// server port are spread over several (source address, port) spaces.
func SourceAddrs(n int) []net.IP {
	ips := make([]net.IP, n)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(2+i))
	}
	return ips
}

// Client is an SSE load client: it holds many streams, each read by its own goroutine that
// de-chunks the HTTP/1.1 body, splits SSE lines, counts events and gap events, and records
// publish→receive latency from the SentField of each event's data.
type Client struct {
	// Sources are the local addresses connections are spread over (SourceAddrs).
	Sources []net.IP
	// Latency receives one sample per event.
	Latency Histogram

	mu    sync.Mutex
	conns []*stream
	wg    sync.WaitGroup
}

type stream struct {
	conn     net.Conn
	index    int
	received atomic.Int64
	gaps     atomic.Int64
	err      atomic.Pointer[error]
}

// Open opens len(paths) streams to addr (host:port), paths[i] being the request target (path
// and query) of stream i, using `parallel` dialers. It returns once every stream got its
// response headers and the opening flush, or at the first failure (streams opened so far stay
// open; Close them).
func (c *Client) Open(ctx context.Context, addr string, paths []string, parallel int) error {
	var next atomic.Int64
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) || ctx.Err() != nil {
					return
				}
				if err := c.open(ctx, addr, paths[i]); err != nil {
					errs <- fmt.Errorf("open stream %d: %w", i, err)
					next.Store(int64(len(paths)))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (c *Client) open(ctx context.Context, addr, path string) error {
	c.mu.Lock()
	index := len(c.conns)
	c.mu.Unlock()
	conn, body, err := dialStream(ctx, c.Sources[index%len(c.Sources)], addr, path)
	if err != nil {
		return err
	}
	s := &stream{conn: conn, index: index}
	c.mu.Lock()
	s.index = len(c.conns)
	c.conns = append(c.conns, s)
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.read(s, body)
	}()
	return nil
}

// dialStream connects from source to addr, sends the request and reads the response head.
// It returns the connection and a reader of the body: de-chunked when the response is
// chunked (net/http's own writer), else the raw bytes up to the close (a stream that took the
// connection out of net/http).
func dialStream(ctx context.Context, source net.IP, addr, path string) (net.Conn, io.Reader, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: source}, Timeout: 10 * time.Second, Control: bindAddressNoPort}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	chunked, err := readHead(br)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if chunked {
		return conn, httputil.NewChunkedReader(br), nil
	}
	return conn, br, nil
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux): bind only the source address and
// let connect pick the port. Without it bind(127.0.0.x:0) must find a port not held by any of
// the churn's closed connections lingering in TIME_WAIT, which slows connecting down as they
// pile up; connect may reuse such a port for a new connection on loopback (tcp_tw_reuse).
const ipBindAddressNoPort = 24

func bindAddressNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// readHead reads a response head, checks it is a 200 and reports whether the body is chunked.
func readHead(br *bufio.Reader) (chunked bool, err error) {
	status, err := br.ReadSlice('\n')
	if err != nil {
		return false, fmt.Errorf("read status line: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return false, fmt.Errorf("status %q", bytes.TrimSpace(status))
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false, fmt.Errorf("read headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return chunked, nil
		}
		if bytes.EqualFold(line, []byte("Transfer-Encoding: chunked")) {
			chunked = true
		}
	}
}

// read consumes one stream until it ends.
func (c *Client) read(s *stream, body io.Reader) {
	lines := bufio.NewReaderSize(body, 4096)
	var sent int64
	haveData := false
	for {
		line, err := lines.ReadSlice('\n')
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				s.err.Store(&err)
			}
			return
		}
		line = line[:len(line)-1]
		switch {
		case len(line) == 0:
			if haveData {
				s.received.Add(1)
				if sent > 0 {
					c.Latency.Record(s.index, time.Duration(time.Now().UnixNano()-sent))
				}
				haveData, sent = false, 0
			}
		case bytes.HasPrefix(line, []byte("data: ")):
			haveData = true
			if i := bytes.Index(line, []byte(SentField)); i >= 0 {
				sent = parseDigits(line[i+len(SentField):])
			}
		case bytes.Equal(line, []byte("event: gap")):
			s.gaps.Add(1)
		}
	}
}

func parseDigits(b []byte) int64 {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// Counts are totals over all streams of a Client.
type Counts struct {
	Streams  int
	Received int64
	Gaps     int64
	Failed   int // streams that ended with a read error other than a close
}

// Counts sums the streams' counters.
func (c *Client) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := Counts{Streams: len(c.conns)}
	for _, s := range c.conns {
		n.Received += s.received.Load()
		n.Gaps += s.gaps.Load()
		if s.err.Load() != nil {
			n.Failed++
		}
	}
	return n
}

// WaitReceived polls until Counts().Received reaches want or the deadline passes; it returns
// the time the count was first seen at want (or the deadline) and whether it was reached.
func (c *Client) WaitReceived(want int64, deadline time.Time) (time.Time, bool) {
	for {
		now := time.Now()
		if c.Counts().Received >= want {
			return now, true
		}
		if now.After(deadline) {
			return now, false
		}
		time.Sleep(2 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// Close closes every stream and waits for the readers to end.
func (c *Client) Close() {
	c.mu.Lock()
	for _, s := range c.conns {
		_ = s.conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	c.conns = nil
	c.mu.Unlock()
}

// ConnectOnce opens one stream, waits for its opening flush (the first blank line of the body:
// the bridge's ": ok" comment) and closes it: one full authenticated connect/disconnect.
func ConnectOnce(ctx context.Context, source net.IP, addr, path string) error {
	conn, body, err := dialStream(ctx, source, addr, path)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	lines := bufio.NewReaderSize(body, 512)
	for {
		line, err := lines.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read opening flush: %w", err)
		}
		if len(line) == 1 {
			return nil
		}
	}
}

// TenantPath is the request target of a stream filtered to tenant with token in the query.
func TenantPath(path, tenant, token string) string {
	return path + "?team_id=" + tenant + "&access_token=" + token
}

// Tenant names the i-th benchmark tenant.
func Tenant(i int) string { return "t" + strconv.Itoa(i) }
