package app

import (
	"bufio"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// startWithoutBroker starts a bridge whose broker is unreachable: the HTTP side serves (not
// ready) while the consumer retries, enough for request-phase limits.
func startWithoutBroker(t *testing.T, args ...string) *Bridge {
	t.Helper()
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	cfg := BindFlags(fs, func(k string) string {
		if k == EnvURL {
			return "amqp://guest:guest@127.0.0.1:1/"
		}
		return ""
	})
	if err := fs.Parse(append([]string{"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"}, args...)); err != nil {
		t.Fatal(err)
	}
	cfg.Authenticator = auth.None()
	b, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(t.Context()) })
	return b
}

// TestSlowHeadersAreCutOff: a client that never finishes its request headers (slow loris) is
// disconnected after --read-header-timeout, without a stream being opened.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	b := startWithoutBroker(t, "--read-header-timeout=300ms")
	conn, err := net.Dial("tcp", b.SSEAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /api/v1/events?team_id=1 HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v after %v", err, elapsed)
	}
	if elapsed < 250*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("closed after %v, want about the 300ms header timeout", elapsed)
	}
	if strings.Contains(string(buf), "text/event-stream") || b.Hub.Len() != 0 {
		t.Fatalf("a stream was opened for incomplete headers: %q", buf)
	}
}

// TestOversizedHeadersAreRefused: a request whose headers exceed --max-header-bytes gets 431.
func TestOversizedHeadersAreRefused(t *testing.T) {
	t.Parallel()
	b := startWithoutBroker(t, "--max-header-bytes=1024")
	conn, err := net.Dial("tcp", b.SSEAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// net/http allows 4 KiB of slack over MaxHeaderBytes; 64 KiB is well over.
	if _, err := io.WriteString(conn, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// TestNotReadyWithoutBroker: /healthz serves, /readyz is 503 while the broker is unreachable,
// and streams still open (clients wait for events rather than failing).
func TestNotReadyWithoutBroker(t *testing.T) {
	t.Parallel()
	b := startWithoutBroker(t)
	if got := httpStatus("http://" + b.OpsAddr() + "/healthz"); got != 200 {
		t.Errorf("healthz %d", got)
	}
	if got := httpStatus("http://" + b.OpsAddr() + "/readyz"); got != 503 {
		t.Errorf("readyz %d without a broker", got)
	}
	c := connect(t, b, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	c.close()
}

// TestStreamOutlivesTheRequestPhaseDeadline: --read-header-timeout bounds the whole request
// phase (http.Server.ReadTimeout), but an admitted stream clears it and lives on: heartbeats
// and events arrive long after the deadline.
func TestStreamOutlivesTheRequestPhaseDeadline(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--read-header-timeout=200ms")
	c := connect(t, b, "team_id=1", "")
	defer c.close()
	poll.Until(t, 5*time.Second, "heartbeats well past the deadline", func() bool { return c.dec.Comments() >= 6 })
	publishEvents(t, publisher(t, node.URI, exchange), "1", "1", 1, 1)
	c.take(1, 10*time.Second)
}
