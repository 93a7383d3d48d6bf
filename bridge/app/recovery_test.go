package app

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// Recovery targets (DESIGN "Reconnection", issue 14 item 4), asserted with the figure in the
// failure message and logged: docs/reliability.md quotes them.
const (
	targetDeadConnection = 5 * time.Second // a blackholed broker connection noticed
	targetBackAfterStart = 2 * time.Second // consuming again after the broker accepts connections
	targetCutOffSilence  = 8 * time.Second // longest silence of a client of a cut-off stream replica
)

// viaProxy returns uri with its host:port replaced by addr.
func viaProxy(t *testing.T, uri, addr string) string {
	t.Helper()
	u, err := amqp091.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("amqp://%s:%s@%s/%s", u.Username, u.Password, addr, u.Vhost)
}

func brokerAddr(t *testing.T, uri string) string {
	t.Helper()
	u, err := amqp091.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", u.Host, u.Port)
}

// TestBlackholedBrokerIsNoticedQuickly: the broker connection goes silent without a RST (a
// partition, through a proxy that stops forwarding). The bridge notices within 5 s and
// /readyz turns 503 at once; after the network heals it consumes again, and the client, still
// connected, gets every event published meanwhile, in order.
func TestBlackholedBrokerIsNoticedQuickly(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	proxy := startProxy(t, brokerAddr(t, node.URI))
	b := startBridge(t, viaProxy(t, node.URI, proxy.Addr()), "--queue="+queue, "--exchange="+exchange)
	ready := "http://" + b.OpsAddr() + "/readyz"
	c := connect(t, b, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "1", "1", 1, 5)
	c.take(5, 10*time.Second)

	proxy.Blackhole()
	detected := poll.Until(t, 30*time.Second, "readyz 503 after the blackhole", func() bool { return httpStatus(ready) == 503 })
	t.Logf("blackholed broker connection noticed after %v (target %v)", detected.Round(10*time.Millisecond), targetDeadConnection)
	if detected > targetDeadConnection {
		t.Errorf("dead broker connection noticed after %v, target %v", detected, targetDeadConnection)
	}
	publishEvents(t, p, "1", "1", 6, 10) // kept by the queue

	proxy.Restore()
	back := poll.Until(t, 30*time.Second, "ready after the network healed", func() bool { return httpStatus(ready) == 200 })
	t.Logf("consuming again %v after the network healed (includes the broker noticing the old connection dead)", back.Round(10*time.Millisecond))
	// At least once: an event whose ack was still on its way when the network went silent is
	// delivered again (counted in events_redelivered_total); then e6..e10, in order.
	duplicates := 0
	for next := 6; next <= 10; {
		m := c.take(1, 15*time.Second)[0]
		if strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, next)) {
			next++
			continue
		}
		if id := eventNumber(m.Data); next == 6 && id >= 1 && id <= 5 {
			duplicates++ // a redelivery of an event whose ack went into the blackhole
			continue
		}
		t.Fatalf("expected event e%d after the blackhole, got %s", next, m.Data)
	}
	t.Logf("e6..e10 in order after the blackhole; %d redelivered duplicate(s) before them", duplicates)
}

// TestBrokerRestartConsumingWithinTwoSeconds: after a broker outage long enough for an
// exponential backoff to have grown (the old one waited 7–12 s after the broker was back),
// the bridge consumes again within 2 s of the broker accepting AMQP connections, and an event
// published then reaches the client that stayed connected.
func TestBrokerRestartConsumingWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Dedicated(t, "bridge-recovery")
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange)
	c := connect(t, b, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })

	node.Stop(t)
	poll.Until(t, 20*time.Second, "not ready while the broker is down", func() bool { return !b.Ready() })
	time.Sleep(8 * time.Second) // the outage itself: long enough for a growing backoff to reach seconds

	accepted := make(chan time.Time, 1)
	stopProbe := make(chan struct{})
	go func() { // the moment the broker accepts an AMQP connection
		for {
			select {
			case <-stopProbe:
				return
			default:
			}
			if conn, err := amqp091.Dial(node.URI); err == nil {
				accepted <- time.Now()
				_ = conn.Close()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	node.Start(t)
	var acceptedAt time.Time
	select {
	case acceptedAt = <-accepted:
	case <-time.After(30 * time.Second):
		close(stopProbe)
		t.Fatal("the broker did not accept connections within 30s of starting")
	}
	poll.Until(t, 30*time.Second, "consuming again", b.Ready)
	back := time.Since(acceptedAt)
	publishEvents(t, publisher(t, node.URI, exchange), "1", "1", 1, 1)
	c.take(1, 10*time.Second)
	delivered := time.Since(acceptedAt)
	t.Logf("consuming %v and delivering %v after the broker accepted connections (target %v)",
		back.Round(10*time.Millisecond), delivered.Round(10*time.Millisecond), targetBackAfterStart)
	if back > targetBackAfterStart {
		t.Errorf("consuming again %v after the broker accepted connections, target %v", back, targetBackAfterStart)
	}
}

// followingClient reads a stream the way a browser behind a Service does: when the stream ends
// it waits for the retry: hint, then reconnects with Last-Event-ID to a ready replica.
type followingClient struct {
	mu       sync.Mutex
	seqs     []int       // event sequence numbers in arrival order
	arrivals []time.Time // arrival time of each
	gaps     []string
	streams  int
}

func follow(t *testing.T, ctx context.Context, query string, replicas ...*Bridge) *followingClient {
	f := &followingClient{}
	go func() {
		lastID := ""
		for ctx.Err() == nil {
			var target *Bridge
			for target == nil && ctx.Err() == nil {
				for _, r := range replicas {
					if httpStatus("http://"+r.OpsAddr()+"/readyz") == 200 {
						target = r
						break
					}
				}
				if target == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if target == nil {
				return
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target.SSEAddr()+"/api/v1/events?"+query, nil)
			if lastID != "" {
				req.Header.Set("Last-Event-ID", lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			f.mu.Lock()
			f.streams++
			f.mu.Unlock()
			dec := sse.NewDecoder(resp.Body, 0)
			for {
				m, err := dec.Next()
				if err != nil {
					break
				}
				f.mu.Lock()
				if m.Name == "gap" {
					f.gaps = append(f.gaps, m.Data)
				} else {
					var seq int
					_, _ = fmt.Sscanf(m.Data, `{"id":"e%d"}`, &seq)
					f.seqs = append(f.seqs, seq)
					f.arrivals = append(f.arrivals, time.Now())
				}
				f.mu.Unlock()
				if m.LastEventID != "" {
					lastID = m.LastEventID
				}
			}
			resp.Body.Close()
			retry := time.Duration(dec.Retry()) * time.Millisecond
			if retry <= 0 {
				retry = 3 * time.Second
			}
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
		}
	}()
	return f
}

func (f *followingClient) received() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs)
}

// TestStreamReplicaCutOffHandsClientsToAHealthyOne: two stream replicas; A reaches the broker
// through a proxy that then blackholes. A turns not-ready, ends its streams with a short
// retry: after a grace, and its client resumes on B with Last-Event-ID: every event exactly
// once, in order, with no silence longer than 8 s while events flow every 50 ms.
func TestStreamReplicaCutOffHandsClientsToAHealthyOne(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream", "--retry=3s"}
	proxy := startProxy(t, brokerAddr(t, node.URI))
	a := startBridge(t, viaProxy(t, node.URI, proxy.Addr()), args...)
	b := startBridge(t, node.URI, args...)
	poll.Until(t, 10*time.Second, "both ready", func() bool { return a.Ready() && b.Ready() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := follow(t, ctx, "team_id=1", a, b) // A first: it is ready
	poll.Until(t, 5*time.Second, "client on A", func() bool { return a.Hub.Len() == 1 })

	p := publisher(t, node.URI, exchange)
	published := 0
	publishFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			published++
			publishRaw(t, p, "team.1.job.1.status", []byte(fmt.Sprintf(`{"id":"e%d"}`, published)))
		}
	}
	publishFor(time.Second)
	proxy.Blackhole()
	cut := time.Now()
	notReady := make(chan time.Duration, 1)
	go func() {
		for httpStatus("http://"+a.OpsAddr()+"/readyz") != 503 {
			time.Sleep(10 * time.Millisecond)
		}
		notReady <- time.Since(cut)
	}()
	publishFor(12 * time.Second)
	var notReadyAfter time.Duration
	select {
	case notReadyAfter = <-notReady:
	case <-time.After(10 * time.Second):
		t.Fatal("the cut-off replica stayed ready")
	}
	poll.Until(t, 15*time.Second, "every event at the client", func() bool { return client.received() >= published })
	cancel()

	client.mu.Lock()
	defer client.mu.Unlock()
	for i, seq := range client.seqs {
		if seq != i+1 {
			t.Fatalf("event %d arrived as %d-th (lost, duplicated or reordered): %v", seq, i+1, client.seqs)
		}
	}
	if len(client.gaps) > 0 || len(client.seqs) != published {
		t.Fatalf("%d of %d events, gaps %v", len(client.seqs), published, client.gaps)
	}
	var silence time.Duration
	for i := 1; i < len(client.arrivals); i++ {
		silence = max(silence, client.arrivals[i].Sub(client.arrivals[i-1]))
	}
	t.Logf("cut-off replica not ready %v after the cut; its client resumed on the healthy replica: "+
		"longest silence %v (target %v), %d events, 0 lost, 0 duplicated, %d streams opened",
		notReadyAfter.Round(10*time.Millisecond), silence.Round(10*time.Millisecond), targetCutOffSilence, published, client.streams)
	if notReadyAfter > targetDeadConnection {
		t.Errorf("cut-off replica still ready %v after the cut, target %v", notReadyAfter, targetDeadConnection)
	}
	if silence > targetCutOffSilence {
		t.Errorf("client silent for %v, target %v", silence, targetCutOffSilence)
	}
	if client.streams < 2 {
		t.Errorf("the client never left the cut-off replica")
	}
}

var eventIDPattern = regexp.MustCompile(`"id":"e([0-9]+)"`)

// eventNumber is N of the event id eN in data, or -1.
func eventNumber(data string) int {
	m := eventIDPattern.FindStringSubmatch(data)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
