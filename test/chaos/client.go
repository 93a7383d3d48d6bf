package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// defaultRetry is the reconnection delay before a stream sent any retry: field (browsers use a
// few seconds; Chromium 3 s).
const defaultRetry = 3 * time.Second

// Receipt is one event a client dispatched, in arrival order: an event of the publisher (Seq ≥
// 0) or a gap notice (Seq = -1, with its reason and dropped count).
type Receipt struct {
	At      instant
	Seq     int64
	Conn    int32 // index into the client's connections
	Reason  string
	Dropped int
}

// IsGap reports whether r is a gap notice.
func (r Receipt) IsGap() bool { return r.Seq < 0 }

// Connection is one HTTP request of a client: to replica URL index Replica, started at Start,
// answered 200 at Open (zero: never opened), ended at End.
type Connection struct {
	Replica    int
	Start      instant
	Open       instant
	End        instant
	Status     int
	LastID     string // the Last-Event-ID the request carried
	EndMessage string
}

// ClientConfig describes one counting SSE client.
type ClientConfig struct {
	// URLs are the replicas' stream URLs (path, filters and token included). The client starts
	// at URLs[First % len] and moves to the next one at every reconnect, as a Service spreading
	// reconnects over replicas would.
	URLs  []string
	First int
	// Run is the publisher's run id: events of other runs are ignored.
	Run string
	// ReadDelay, when set, makes the client slow: it waits this long after each dispatched event
	// and reads through a small socket (slowSocket), so the bridge's buffer for it fills.
	ReadDelay time.Duration
}

// Client is a counting SSE client that behaves like a browser's EventSource: it follows retry:,
// reconnects after every end of stream or network error with Last-Event-ID, and gives up for
// good only on a non-200 answer (as a browser does). It records every event and gap it
// dispatches, and every connection.
type Client struct {
	cfg  ClientConfig
	http *http.Client

	mu          sync.Mutex
	receipts    []Receipt
	connections []Connection
	fatal       string
	lastID      string
	maxSeq      int64
	done        chan struct{}
}

// NewClient returns a client; Start runs it.
func NewClient(cfg ClientConfig) *Client {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	if cfg.ReadDelay > 0 {
		dialer.Control = slowSocket
	}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	return &Client{cfg: cfg, http: &http.Client{Transport: transport}, maxSeq: -1, done: make(chan struct{})}
}

// slowSocket makes the kernel hold little for a slow client, so that the bridge's own buffer
// for it fills within seconds instead of after megabytes: a 4 KiB receive buffer, and a 536-byte
// MSS, which also keeps the bridge's send buffer small (Linux sizes it from the MSS; on loopback
// the 64 KiB MSS would let it grow to megabytes).
func slowSocket(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = errors.Join(
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096),
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536))
	})
	if err != nil {
		return err
	}
	return serr
}

// Start runs the client until ctx ends; Done is closed then.
func (c *Client) Start(ctx context.Context) {
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

// Done is closed when the client stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) run(ctx context.Context) {
	retry := defaultRetry
	for replica := c.cfg.First; ctx.Err() == nil; replica++ {
		if next, final := c.connect(ctx, replica%len(c.cfg.URLs)); final {
			return
		} else if next > 0 {
			retry = next
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry): // the reconnection delay a browser waits
		}
	}
}

// connect runs one request to replica until its stream ends. It returns the retry delay the
// stream announced (0: none) and whether the client must give up (a non-200 answer).
func (c *Client) connect(ctx context.Context, replica int) (time.Duration, bool) {
	c.mu.Lock()
	conn := int32(len(c.connections))
	lastID := c.lastID
	c.connections = append(c.connections, Connection{Replica: replica, Start: now(), LastID: lastID})
	c.mu.Unlock()
	endWith := func(status int, err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		cn := &c.connections[conn]
		cn.End, cn.Status = now(), status
		if err != nil {
			cn.EndMessage = err.Error()
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URLs[replica], nil)
	if err != nil {
		c.giveUp(fmt.Sprintf("request: %v", err))
		return 0, true
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		endWith(0, err)
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		endWith(resp.StatusCode, nil)
		if ctx.Err() == nil {
			c.giveUp(fmt.Sprintf("%s answered %s (%s): a browser gives up for good", redactToken(c.cfg.URLs[replica]), resp.Status, resp.Header.Get("Content-Type")))
		}
		return 0, true
	}
	c.mu.Lock()
	c.connections[conn].Open, c.connections[conn].Status = now(), resp.StatusCode
	c.mu.Unlock()

	dec := sse.NewDecoder(resp.Body, 0)
	for {
		m, err := dec.Next()
		if err != nil {
			endWith(resp.StatusCode, err)
			return time.Duration(dec.Retry()) * time.Millisecond, false
		}
		c.dispatch(conn, m)
		if c.cfg.ReadDelay > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(c.cfg.ReadDelay): // a slow reader, on purpose
			}
		}
	}
}

// dispatch records a dispatched event.
func (c *Client) dispatch(conn int32, m sse.Message) {
	r := Receipt{At: now(), Seq: -1, Conn: conn}
	switch m.Name {
	case "gap":
		var g struct {
			Reason  string `json:"reason"`
			Dropped int    `json:"dropped"`
		}
		_ = json.Unmarshal([]byte(m.Data), &g)
		r.Reason, r.Dropped = g.Reason, g.Dropped
	case "message":
		seq, ok := parseSeq(m.Data, c.cfg.Run)
		if !ok {
			return
		}
		r.Seq = seq
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.LastEventID != "" {
		c.lastID = m.LastEventID
	}
	if r.Seq > c.maxSeq {
		c.maxSeq = r.Seq
	}
	c.receipts = append(c.receipts, r)
}

// parseSeq reads the sequence number from an event's id field "<run>-<seq>".
func parseSeq(data, run string) (int64, bool) {
	prefix := `"id":"` + run + "-"
	i := strings.Index(data, prefix)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(prefix):]
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		return 0, false
	}
	seq, err := strconv.ParseInt(rest[:end], 10, 64)
	return seq, err == nil
}

func (c *Client) giveUp(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal == "" {
		c.fatal = reason
	}
}

// Fatal is why the client gave up for good ("" while it has not).
func (c *Client) Fatal() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// MaxSeq is the highest sequence number received (-1: none).
func (c *Client) MaxSeq() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxSeq
}

// Snapshot returns copies of the receipts and connections so far.
func (c *Client) Snapshot() ([]Receipt, []Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Receipt(nil), c.receipts...), append([]Connection(nil), c.connections...)
}

// OpenOn returns the replica the client was streaming from at t, or -1.
func OpenOn(conns []Connection, t instant) int {
	for _, cn := range conns {
		if cn.Open > 0 && cn.Open <= t && (cn.End == 0 || cn.End > t) {
			return cn.Replica
		}
	}
	return -1
}

// redactToken removes the access_token value from a URL for messages.
func redactToken(u string) string {
	i := strings.Index(u, "access_token=")
	if i < 0 {
		return u
	}
	end := strings.IndexByte(u[i:], '&')
	if end < 0 {
		return u[:i] + "access_token=REDACTED"
	}
	return u[:i] + "access_token=REDACTED" + u[i+end:]
}
