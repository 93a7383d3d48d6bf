package server

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An HTTP/1 stream leaves net/http: the response is close-delimited (no chunking), keeps the
// headers set before the handler (CORS middleware), carries events, and ending the
// connection from the client releases the subscription at once.
func TestDetachedStreamIsCloseDelimitedAndNoticesTheClientLeaving(t *testing.T) {
	h := newHarness(t, nil)
	h.server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://app.example")
		h.handler.ServeHTTP(w, r)
	})
	conn, err := net.Dial("tcp", h.server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET /?team_id=1 HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 || !resp.Close ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d transfer-encoding %v close %v headers %v", resp.StatusCode, resp.TransferEncoding, resp.Close, resp.Header)
	}
	h.waitClients(t, 1)
	h.publish("1", "7", `{"n":1}`)
	h.publish("1", "7", `{"n":2}`)
	var body strings.Builder
	for strings.Count(body.String(), "data: ") < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read body: %v (so far %q)", err, body.String())
		}
		body.WriteString(line)
	}
	if !strings.HasPrefix(body.String(), ": ok\n\nretry: 1000\n\n") || !strings.Contains(body.String(), "data: {\"n\":1}\n\n") {
		t.Fatalf("body %q", body.String())
	}
	conn.Close()
	h.waitClients(t, 0)
}

// TestStuckClientIsCutOffAfterTheWriteTimeout: the write deadline is re-armed only when less
// than half of it is left, never dropped: a client that stops reading after the stream has been
// idle for longer than the timeout (its deadline armed long ago, already past) is still cut off
// within about one WriteTimeout of its socket filling up, and the others keep their streams.
func TestStuckClientIsCutOffAfterTheWriteTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.WriteTimeout = timeout })
	h.openStuck(t, "team_id=1")
	h.waitClients(t, 1)
	_, fast := h.open(t, "team_id=2", nil)
	h.waitClients(t, 2)
	time.Sleep(2 * timeout) // idle past the deadline armed by the opening write (not a synchronisation)

	payload := strings.Repeat("x", 16<<10)
	start := time.Now()
	for h.hub.Len() == 2 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the stuck client was not cut off within 20s")
		}
		h.publish("1", "1", payload) // fills the stuck client's socket, then its buffer (drops)
		h.publish("2", "1", "{}")
		if m := next(t, fast); string(m.Data) != "{}" {
			t.Fatalf("fast client got %q", m.Data)
		}
	}
	if h.hub.Len() != 1 {
		t.Fatalf("hub has %d subscribers, want the fast client's only", h.hub.Len())
	}
}
