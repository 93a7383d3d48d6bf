package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestBrokerRestartReconnectsWithoutLosingEvents stops and starts a dedicated broker under a
// connected client: the client stays connected (heartbeats go on), /readyz turns 503 while
// the broker is away, the reconnect is counted, and every event — including those published
// before the bridge is back, kept by the durable queue — arrives in order.
func TestBrokerRestartReconnectsWithoutLosingEvents(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Dedicated(t, "bridge-restart")
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange)
	ready := "http://" + b.OpsAddr() + "/readyz"
	poll.Until(t, 5*time.Second, "ready", func() bool { return httpStatus(ready) == 200 })

	c := connect(t, b, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "1", "1", 1, 20)
	before := c.take(20, 10*time.Second)
	p.Close()

	node.Stop(t)
	poll.Until(t, 20*time.Second, "readyz 503 while the broker is down", func() bool { return httpStatus(ready) == 503 })
	heartbeats := c.dec.Comments()
	poll.Until(t, 5*time.Second, "heartbeats during the outage", func() bool { return c.dec.Comments() > heartbeats+1 })

	node.Start(t)
	p2 := publisher(t, node.URI, exchange)
	publishEvents(t, p2, "1", "1", 21, 40)
	after := c.take(20, 30*time.Second)
	for i, m := range append(before, after...) {
		if !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+1)) {
			t.Fatalf("event %d: %s", i+1, m.Data)
		}
	}
	poll.Until(t, 10*time.Second, "ready again", func() bool { return httpStatus(ready) == 200 })
	if n := testutil.ToFloat64(b.Metrics.Reconnects); n < 1 {
		t.Fatalf("reconnects = %v", n)
	}
	select {
	case err := <-c.done:
		t.Fatalf("client stream ended during the outage: %v", err)
	default:
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// bridgeBinary builds cmd/bridge once per test process.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bridge-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary, buildErr = clitest.Compile(dir, clitest.BridgePackage, "")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// TestSIGTERMDrainsAndKeepsUnackedMessages runs the real binary: a backlog is being consumed
// when SIGTERM arrives; the client gets a retry: hint and a clean end, the process exits 0,
// and every event is either delivered to the client or still in the queue — none lost.
func TestSIGTERMDrainsAndKeepsUnackedMessages(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	bin := bridgeBinary(t)

	// Declare the topology, then run the binary with a client connected before events flow.
	declare := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = declare.Shutdown(ctx)
	cancel()

	ports := freeLoopbackPorts(t, 2)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--queue="+queue, "--exchange="+exchange, "--prefetch=1", "--buffer-size=100000",
		"--listen="+ports[0], "--metrics-listen="+ports[1], "--retry=200ms", "--log-format=text", "--auth-mode=none")
	cmd.Env = append(os.Environ(), "RABBITMQ_URL="+node.URI)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	poll.Until(t, 10*time.Second, "bridge ready", func() bool { return httpStatus("http://"+ports[1]+"/readyz") == 200 })
	c := connectURL(t, "http://"+ports[0]+"/api/v1/events?team_id=1")
	poll.Until(t, 5*time.Second, "client registered", func() bool {
		return strings.Contains(scrape(t, "http://"+ports[1]+"/metrics"), "eventstream_bridge_clients 1")
	})

	// Publish a backlog faster than a prefetch of 1 lets the bridge consume it.
	const total = 5000
	p := publisher(t, node.URI, exchange)
	var confirms []*publish.Confirmation
	for i := 1; i <= total; i++ {
		dc, err := p.PublishDeferred(context.Background(), "team.1.job.1.status", []byte(fmt.Sprintf(`{"id":"e%d"}`, i)), publish.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		confirms = append(confirms, dc)
	}
	first := c.take(100, 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	received := len(first)
	for range c.events {
		received++
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bridge exit: %v\n%s", err, logs.String())
	}
	if c.dec.Retry() < 200 || c.dec.Retry() >= 600 {
		t.Fatalf("retry hint after SIGTERM = %d, want jittered in [200, 600)", c.dec.Retry())
	}
	for _, dc := range confirms {
		if err := publish.WaitConfirm(context.Background(), dc); err != nil {
			t.Fatal(err)
		}
	}
	left := queueMessages(t, node.URI, queue)
	if received+left != total {
		t.Fatalf("delivered %d + left in queue %d != published %d: events lost or duplicated\n%s", received, left, total, logs.String())
	}
	if left == 0 {
		t.Logf("all %d events were consumed before SIGTERM took effect; the unacked path was not exercised", total)
	}
	t.Logf("delivered %d, returned to the queue %d", received, left)
}

func connectURL(t *testing.T, url string) *client {
	t.Helper()
	return connectWith(t, url, "")
}

func connectWith(t testing.TB, url, lastEventID string) *client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("stream answered %d", resp.StatusCode)
	}
	c := &client{t: t, resp: resp, dec: sse.NewDecoder(resp.Body, 0), events: make(chan sse.Message, 100000), done: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			m, err := c.dec.Next()
			if err != nil {
				c.done <- err
				close(c.events)
				return
			}
			c.events <- m
		}
	}()
	t.Cleanup(c.close)
	return c
}

func freeLoopbackPorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var listeners []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range listeners {
		_ = l.Close()
	}
	return addrs
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestConnectionClosedByBrokerReconnects: an operator closes the bridge's connection in the
// management UI (a connection reset, as after a load-balancer timeout); the bridge reconnects,
// counts it, and the client — still connected — gets the events published afterwards. The
// queue deleted under the consumer (basic.cancel from the broker) is survived the same way.
func TestConnectionClosedByBrokerReconnects(t *testing.T) {
	for _, queueType := range []string{"classic", "stream"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			testConnectionClosed(t, queueType)
		})
	}
}

func testConnectionClosed(t *testing.T, queueType string) {
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type="+queueType)
	c := connect(t, b, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "1", "1", 1, 1)
	c.take(1, 10*time.Second)

	node.CloseConnectionsNamed(t, "eventstream-bridge "+queue)
	poll.Until(t, 15*time.Second, "a counted reconnect", func() bool { return testutil.ToFloat64(b.Metrics.Reconnects) >= 1 })
	publishEvents(t, p, "1", "1", 2, 2)
	if m := c.take(1, 10*time.Second)[0]; !strings.Contains(m.Data, `"id":"e2"`) {
		t.Fatalf("after the reset: %s (a stream must resume after its last offset: no duplicate)", m.Data)
	}
	if queueType == "stream" {
		return
	}

	// Deleting the queue cancels the consumer; the bridge (declaring topology here) recreates
	// it and consumes again.
	conn, err := amqp091.Dial(node.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "a second reconnect", func() bool { return testutil.ToFloat64(b.Metrics.Reconnects) >= 2 })
	poll.Until(t, 15*time.Second, "ready", func() bool { return b.Ready() })
	publishEvents(t, p, "1", "1", 3, 3)
	if m := c.take(1, 10*time.Second)[0]; !strings.Contains(m.Data, `"id":"e3"`) {
		t.Fatalf("after the queue was recreated: %s", m.Data)
	}
}
