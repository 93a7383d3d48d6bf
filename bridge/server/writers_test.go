//go:build linux

package server

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/snapshot"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// dialStream opens a stream on a raw connection and reads its head and opening comment, so
// the stream is admitted; the connection closes with the test.
func (h *harness) dialStream(t *testing.T, query string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", h.server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /?%s HTTP/1.1\r\nHost: x\r\n\r\n", query)
	r := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream opening: %v", err)
		}
		if line == ": ok\n" {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, r
}

// readData reads n events from r and returns their data fields in order.
func readData(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			got = append(got, strings.TrimSuffix(data, "\n"))
		}
	}
	return got
}

// TestIdleStreamsHoldNoGoroutine (issue 13): detached streams are run by the writer pool, so
// 300 open, idle streams add no goroutine each (a goroutine per stream held a stack of at
// least 2 KiB), and the pool's writers end when the last stream does.
func TestIdleStreamsHoldNoGoroutine(t *testing.T) {
	h := newHarness(t, nil)
	before := runtime.NumGoroutine()
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i], _ = h.dialStream(t, "team_id="+strconv.Itoa(i%10))
	}
	h.waitClients(t, n)
	if grown := runtime.NumGoroutine() - before; grown > 20 {
		t.Fatalf("%d idle streams added %d goroutines", n, grown)
	}

	// The streams still work: one event reaches every stream of its team.
	h.publish("3", "1", `{"x":1}`)
	r := bufio.NewReader(conns[3])
	if got := readData(t, r, 1); got[0] != `{"x":1}` {
		t.Fatalf("stream got %q", got)
	}

	for _, c := range conns {
		c.Close()
	}
	h.waitClients(t, 0)
	p := h.handler.writers()
	poll.Until(t, 5*time.Second, "the pool's writers to end", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.workers == 0
	})
}

// TestFullSocketIsWrittenWhenTheClientReadsAgain (issue 13): a client that stops reading fills
// its socket; the pool's writer does not wait for it (its pending bytes are written by a
// goroutine of their own), other streams go on, and once the client reads again it gets every
// event whole and in order, with nothing dropped.
func TestFullSocketIsWrittenWhenTheClientReadsAgain(t *testing.T) {
	h := newHarnessWithHub(t, hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, BufferSize: 4096}, nil)
	_, slow := h.dialStream(t, "team_id=1")
	_, fast := h.dialStream(t, "team_id=1")
	h.waitClients(t, 2)

	// ~16 MB: beyond what the two sockets buffer on loopback (a small receive buffer would also
	// fill them, but it keeps the TCP window small for good, and reading becomes very slow).
	payload := strings.Repeat("y", 16000)
	const n = 1000
	var fastGot []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fastGot = readData(t, fast, n)
	}()
	for i := 0; i < n; i++ {
		h.publish("1", "1", strconv.Itoa(i)+payload)
	}
	wg.Wait() // the fast client got everything while the slow one read nothing
	poll.Until(t, 5*time.Second, "the slow stream to wait for its socket", func() bool {
		return h.handler.writers().waiting.Load() == 1
	})

	slowGot := readData(t, slow, n)
	for i := 0; i < n; i++ {
		want := strconv.Itoa(i) + payload
		if slowGot[i] != want || fastGot[i] != want {
			t.Fatalf("event %d: slow client got %.12q…, fast %.12q…, want %.12q…", i, slowGot[i], fastGot[i], want)
		}
	}
	if dropped := testutil.ToFloat64(h.metrics.Dropped.WithLabelValues(hub.DropReasonOverflow)); dropped != 0 {
		t.Fatalf("%v events dropped", dropped)
	}
	poll.Until(t, 5*time.Second, "the slow stream back in the pool", func() bool {
		return h.handler.writers().waiting.Load() == 0
	})
}

// TestPoolDeliversEveryEventInOrderToEveryStream (issue 13): 40 streams over 4 teams and 40
// more on every team, 3,000 events published while they read; every stream gets exactly its
// events, in order. Run with -race it checks that a stream is never run by two writers at once.
func TestPoolDeliversEveryEventInOrderToEveryStream(t *testing.T) {
	h := newHarnessWithHub(t, hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, BufferSize: 4096}, nil)
	const perTeam, teams, events = 10, 4, 3000
	type client struct {
		team string
		r    *bufio.Reader
	}
	var clients []client
	for i := 0; i < perTeam*teams; i++ {
		team := strconv.Itoa(i % teams)
		_, r := h.dialStream(t, "team_id="+team)
		clients = append(clients, client{team, r})
		_, r = h.dialStream(t, "team_id=0&team_id=1&team_id=2&team_id=3")
		clients = append(clients, client{"", r})
	}
	h.waitClients(t, len(clients))

	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := events
			if c.team != "" {
				want = events / teams
			}
			got := readData(t, c.r, want)
			last := -1
			for _, d := range got {
				team, seq, _ := strings.Cut(d, ":")
				i, _ := strconv.Atoi(seq)
				if (c.team != "" && team != c.team) || i <= last {
					t.Errorf("stream of team %q: %q after event %d", c.team, d, last)
					return
				}
				last = i
			}
		}()
	}
	for i := 0; i < events; i++ {
		team := strconv.Itoa(i % teams)
		h.publish(team, "1", team+":"+strconv.Itoa(i))
	}
	wg.Wait()
	if dropped := testutil.ToFloat64(h.metrics.Dropped.WithLabelValues(hub.DropReasonOverflow)); dropped != 0 {
		t.Fatalf("%v events dropped", dropped)
	}
}

// TestClientsThatDoNotReadHoldNoWriteSlot (issue 13): blocking writes (here: openings with a
// 16 MB snapshot) take one of GOMAXPROCS write slots only while the kernel takes bytes, so
// clients that never read, more of them than there are slots, leave the snapshot of a client
// that reads as fast as ever.
func TestClientsThatDoNotReadHoldNoWriteSlot(t *testing.T) {
	store := snapshot.New(snapshot.Config{MaxKeys: 1000, MaxBytes: 64 << 20, TenantIndex: 0})
	h := newHarnessWithHub(t, hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, BufferSize: 64, LastValues: store}, nil)
	payload := strings.Repeat("z", 16000)
	for i := 0; i < 1000; i++ {
		h.publish("1", strconv.Itoa(i), payload)
	}
	stuck := 2*runtime.GOMAXPROCS(0) + 1
	for i := 0; i < stuck; i++ {
		h.openStuck(t, "team_id=1&snapshot=1")
	}
	h.waitClients(t, stuck)
	poll.Until(t, 5*time.Second, "the stuck clients' sockets to be full", func() bool {
		return len(h.handler.writeSlots) == 0 // no stuck client holds a slot
	})
	_, d := h.open(t, "team_id=1&snapshot=1", nil)
	events, end := readSnapshot(t, d)
	if len(events) != 1000 || end.Data != `{"keys":1000,"partial":false}` {
		t.Fatalf("snapshot of %d events, end %s", len(events), end.Data)
	}
}
