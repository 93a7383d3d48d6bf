package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/bench"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestAnnouncedBodiesDoNotHoldSockets runs the real binary with 1,024 file descriptors and
// sends it 1,100 requests that announce a body (Content-Length or chunked) and never send it:
// on the stream path, on another path and on the operations port, without a token. Every one
// of those connections is closed by the bridge within --read-header-timeout, and meanwhile a
// new stream and /healthz are answered within 1 s (before the fix the bridge waited for each
// body forever, ran out of descriptors and answered nothing).
func TestAnnouncedBodiesDoNotHoldSockets(t *testing.T) {
	const (
		held              = 1100
		readHeaderTimeout = 2 * time.Second
		answerWithin      = time.Second
	)
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })

	// The binary under the descriptor limit of a small pod.
	wrapper := filepath.Join(t.TempDir(), "bridge-1024-fds")
	script := "#!/bin/bash\nulimit -n 1024 || exit 1\nexec " + bridgeBinary(t) + ` "$@"` + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := []byte("a-test-secret-of-at-least-32-bytes-long")
	var logs clitest.Output
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bench.StartBridge(ctx, bench.BridgeOptions{
		Binary: wrapper, AMQPURL: node.URI, Exchange: exchange, Queue: queue, JWTSecret: string(secret),
		Extra: []string{"--read-header-timeout=" + readHeaderTimeout.String()}, Log: &logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	if limit := openFilesLimit(t, b.PID()); limit != "1024" {
		t.Fatalf("bridge runs with %s open files, want 1024", limit)
	}

	requests := []struct{ addr, head string }{
		{b.Addr, "GET /api/v1/events?team_id=1 HTTP/1.1\r\nHost: bridge\r\nContent-Length: 10\r\n\r\n"},
		{b.Addr, "GET /api/v1/events HTTP/1.1\r\nHost: bridge\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{b.Addr, "POST /elsewhere HTTP/1.1\r\nHost: bridge\r\nContent-Length: 10\r\n\r\n"},
		{b.OpsAddr, "GET /healthz HTTP/1.1\r\nHost: bridge\r\nContent-Length: 10\r\n\r\n"},
		{b.OpsAddr, "GET /metrics HTTP/1.1\r\nHost: bridge\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{b.OpsAddr, "GET /elsewhere HTTP/1.1\r\nHost: bridge\r\nContent-Length: 10\r\n\r\n"},
	}
	type outcome struct {
		open   time.Duration // from the request's last byte to the bridge closing the connection
		status string
		err    error
	}
	outcomes := make([]outcome, held)
	var wg sync.WaitGroup
	for i := range held {
		req := requests[i%len(requests)]
		conn, err := net.Dial("tcp", req.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, req.head); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		sent := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetReadDeadline(sent.Add(readHeaderTimeout + 10*time.Second))
			answer, err := io.ReadAll(conn) // until the bridge closes the connection
			o := outcome{open: time.Since(sent), err: err}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				o.err = fmt.Errorf("still open after %v", o.open)
			} else {
				o.err = nil // EOF or reset: closed by the bridge
			}
			o.status, _, _ = strings.Cut(string(answer), "\r\n")
			outcomes[i] = o
		}()
	}

	// While those connections are being handled: a new stream and /healthz answer in time.
	token := bench.HS256Token(secret, []string{"1"}, time.Hour)
	probe := &http.Client{Timeout: answerWithin}
	start := time.Now()
	healthz, err := probe.Get("http://" + b.OpsAddr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz not answered within %v while %d requests wait for their bodies: %v", answerWithin, held, err)
	}
	healthz.Body.Close()
	healthzAfter := time.Since(start)
	streamAfter, err := firstStreamBytes(probe, "http://"+b.Addr+b.Path+"?team_id=1&access_token="+token)
	if err != nil {
		t.Fatalf("new stream not answered within %v while %d requests wait for their bodies: %v", answerWithin, held, err)
	}
	t.Logf("during the flood: /healthz answered in %v, a new stream opened in %v", healthzAfter, streamAfter)

	wg.Wait()
	var longest time.Duration
	statuses := map[string]int{}
	for i, o := range outcomes {
		if o.err != nil {
			t.Fatalf("connection %d (%q): %v", i, requests[i%len(requests)].head, o.err)
		}
		longest = max(longest, o.open)
		statuses[o.status]++
	}
	t.Logf("%d connections announcing a body: closed by the bridge at most %v after the request; answers %v", held, longest, statuses)
	if longest > readHeaderTimeout {
		t.Fatalf("a connection stayed open %v, longer than --read-header-timeout %v", longest, readHeaderTimeout)
	}
	if statuses["HTTP/1.1 400 Bad Request"] != held {
		t.Fatalf("answers %v, want 400 for all %d", statuses, held)
	}
	onStreamListener := 0
	for i := range held {
		if requests[i%len(requests)].addr == b.Addr {
			onStreamListener++
		}
	}
	metricsText := scrape(t, "http://"+b.OpsAddr+"/metrics")
	want := fmt.Sprintf(`eventstream_bridge_connections_rejected_total{reason="request_body"} %d`, onStreamListener)
	if !strings.Contains(metricsText, want) {
		t.Fatalf("metrics lack %q", want)
	}
}

// firstStreamBytes opens a stream and returns how long the first bytes of the 200 response
// took; the client's timeout bounds it.
func firstStreamBytes(client *http.Client, url string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != ": ok\n" {
		return 0, fmt.Errorf("stream starts with %q", line)
	}
	return time.Since(start), nil
}

// openFilesLimit returns the soft "Max open files" limit of process pid.
func openFilesLimit(t *testing.T, pid int) string {
	t.Helper()
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Max open files\s+(\S+)`).FindSubmatch(limits)
	if m == nil {
		t.Fatalf("no open files limit in /proc/%d/limits", pid)
	}
	return string(m[1])
}
