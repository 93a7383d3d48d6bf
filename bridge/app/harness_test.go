package app

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// startBridge starts an in-process bridge against uri with flags args (listeners on loopback
// port 0, topology declared by the bridge) and shuts it down with the test.
func startBridge(t testing.TB, uri string, args ...string) *Bridge {
	t.Helper()
	b, err := startUnconnected(t, uri, args...)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Consumer.Connected():
	case <-time.After(20 * time.Second):
		t.Fatal("bridge did not start consuming within 20s")
	}
	return b
}

// startUnconnected is startBridge without waiting for the consumer.
func startUnconnected(t testing.TB, uri string, args ...string) (*Bridge, error) {
	t.Helper()
	return startAdjusted(t, uri, func(*Config) {}, args...)
}

// startAdjusted is startUnconnected with adjust applied to the parsed configuration (for the
// settings that have no flag, such as Observe).
func startAdjusted(t testing.TB, uri string, adjust func(*Config), args ...string) (*Bridge, error) {
	t.Helper()
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	cfg := BindFlags(fs, func(key string) string {
		if key == EnvURL {
			return uri
		}
		return ""
	})
	base := []string{"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", "--declare-topology", "--heartbeat=200ms", "--retry=100ms"}
	if err := fs.Parse(append(base, args...)); err != nil {
		return nil, err
	}
	cfg.Authenticator = auth.None()
	cfg.LagInterval = 100 * time.Millisecond
	adjust(cfg)
	level := slog.LevelWarn
	var w io.Writer = io.Discard
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		level, w = slog.LevelDebug, os.Stderr
	}
	b, err := Start(cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
	})
	return b, nil
}

// uniqueName returns a queue/exchange name unique to this test run.
func uniqueName(t testing.TB, prefix string) string {
	return prefix + "-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + events.NewID()[:8]
}

// client is an SSE client of a bridge.
type client struct {
	t      testing.TB
	resp   *http.Response
	dec    *sse.Decoder
	events chan sse.Message
	done   chan error
	cancel context.CancelFunc
}

func connect(t *testing.T, b *Bridge, query string, lastEventID string) *client {
	t.Helper()
	return connectWith(t, "http://"+b.SSEAddr()+"/api/v1/events?"+query, lastEventID)
}

func (c *client) close() {
	c.cancel()
	c.resp.Body.Close()
}

// take returns the next n events or fails after timeout.
func (c *client) take(n int, timeout time.Duration) []sse.Message {
	c.t.Helper()
	var got []sse.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m, ok := <-c.events:
			if !ok {
				c.t.Fatalf("stream ended after %d of %d events: %v", len(got), n, <-c.done)
			}
			got = append(got, m)
		case <-deadline:
			c.t.Fatalf("got %d of %d events within %v", len(got), n, timeout)
		}
	}
	return got
}

// publisher returns an publish.Publisher on exchange, closed with the test.
func publisher(t testing.TB, uri, exchange string) *publish.Publisher {
	t.Helper()
	p, err := publish.Dial(uri, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

var tmpl = events.MustParseTemplate(events.DefaultRoutingKeyTemplate)

func publishEvents(t *testing.T, p *publish.Publisher, team, job string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i <= to; i++ {
		ev := events.Event{ID: "e" + itoa(i), Type: "job.status", TeamID: team, JobID: job, Status: "running", Progress: i % 101, Message: "step " + itoa(i), Time: time.Now().UTC()}
		if err := p.PublishEvent(ctx, tmpl, ev, publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func publishRaw(t testing.TB, p *publish.Publisher, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, key, body, publish.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// queueMessages returns the ready message count of queue (passive declare).
func queueMessages(t *testing.T, uri, queue string) int {
	t.Helper()
	n, ok := rabbitmqtest.QueueMessages(t, uri, queue)
	if !ok {
		t.Fatalf("queue %q does not exist", queue)
	}
	return n
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// shutdown stops b as SIGTERM does (drain, then close) and fails the test unless that takes
// under 10 s.
func shutdown(t *testing.T, b *Bridge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
