// Package browser runs the bridge against a real headless Chromium: the browser's EventSource
// is the judge of SSE conformance (framing, multi-line data, Last-Event-ID on reconnect).
package browser

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/bridgetest"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// page opens one EventSource on the page's own origin and records everything it sees.
const page = `<!doctype html><meta charset="utf-8"><title>sse</title><script>
window.seen = {messages: [], gaps: [], opens: 0, errors: 0};
const es = new EventSource('/api/v1/events?team_id=7');
es.onopen = () => { window.seen.opens++; };
es.onerror = () => { window.seen.errors++; };
es.onmessage = (e) => { window.seen.messages.push({id: e.lastEventId, data: e.data}); };
es.addEventListener('gap', (e) => { window.seen.gaps.push(e.data); });
</script>`

type seen struct {
	Messages []struct {
		ID   string `json:"id"`
		Data string `json:"data"`
	} `json:"messages"`
	Gaps   []string `json:"gaps"`
	Opens  int      `json:"opens"`
	Errors int      `json:"errors"`
}

// frontend serves the page and proxies the stream to whichever bridge is current, holding
// requests while there is none (a restart), and records each request's Last-Event-ID.
type frontend struct {
	mu          sync.Mutex
	backend     *url.URL
	changed     chan struct{}
	lastEventID []string
}

func (f *frontend) setBackend(u *url.URL) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = u
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
		return
	}
	f.mu.Lock()
	f.lastEventID = append(f.lastEventID, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	for {
		f.mu.Lock()
		backend, changed := f.backend, f.changed
		f.mu.Unlock()
		if backend != nil {
			proxy := httputil.NewSingleHostReverseProxy(backend)
			proxy.FlushInterval = -1
			proxy.ServeHTTP(w, r)
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

func (f *frontend) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lastEventID...)
}

func startBridge(t *testing.T, uri string, args ...string) *app.Bridge {
	t.Helper()
	return startBridgeWith(t, uri, auth.None(), args...)
}

// browserArgs make a bridge's reconnect advice and heartbeats short enough for the tests.
var browserArgs = []string{"--retry=300ms", "--heartbeat=1s"}

// startBridgeWith starts a bridge in this process that authenticates clients with authn and
// waits until it consumes.
func startBridgeWith(t *testing.T, uri string, authn auth.Authenticator, args ...string) *app.Bridge {
	t.Helper()
	return bridgetest.Start(t, uri, bridgetest.Options{Authenticator: authn}, append(slices.Clone(browserArgs), args...)...)
}

// TestEventSourceReceivesAndResumesAcrossRestart: Chromium's EventSource receives events whose
// data spans several lines exactly; when the bridge restarts (drain with retry:, new process),
// the browser reconnects by itself with Last-Event-ID and continues with the next event, also
// those published while no bridge ran, without a gap or duplicate.
func TestEventSourceReceivesAndResumesAcrossRestart(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	node := rabbitmqtest.Shared(t)
	queue, exchange := "browser-q-"+events.NewID()[:8], "browser-x-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream"}
	first := startBridge(t, node.URI, args...)

	front := &frontend{changed: make(chan struct{})}
	front.setBackend(&url.URL{Scheme: "http", Host: first.SSEAddr()})
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close) // after the browser is gone (cleanups run last-in first-out)

	_, waitFor := openPage(t, browserPath, srv.URL+"/")
	waitFor("the stream to open", func(s seen) bool { return s.Opens == 1 })
	if first.Hub.Len() != 1 {
		t.Fatalf("bridge has %d subscribers", first.Hub.Len())
	}

	pub, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// Pretty-printed JSON: the data has real line breaks, blank-looking indentation and UTF-8.
	body := func(i int) string {
		return fmt.Sprintf("{\n  \"id\": \"e%d\",\n  \"team_id\": \"7\",\n\n  \"message\": \"grüße: %d\"\n}", i, i)
	}
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if err := pub.Publish(context.Background(), "team.7.job.1.status", []byte(body(i)), publish.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1, 3)
	s := waitFor("three events", func(s seen) bool { return len(s.Messages) == 3 })
	for i, m := range s.Messages {
		if m.Data != body(i+1) {
			t.Fatalf("event %d data %q, want %q", i+1, m.Data, body(i+1))
		}
	}
	lastID := s.Messages[2].ID

	// Restart: the first bridge drains (jittered retry:, end of stream), the browser starts
	// reconnecting, events are published while no bridge runs, then a new process starts.
	front.setBackend(nil)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	if err := first.Shutdown(shutdownCtx); err != nil {
		t.Fatal(err)
	}
	cancelShutdown()
	publish(4, 5)
	second := startBridge(t, node.URI, args...)
	front.setBackend(&url.URL{Scheme: "http", Host: second.SSEAddr()})

	s = waitFor("events after the restart", func(s seen) bool { return len(s.Messages) >= 5 })
	publish(6, 6)
	s = waitFor("a live event after resuming", func(s seen) bool { return len(s.Messages) >= 6 })
	if len(s.Messages) != 6 || len(s.Gaps) != 0 {
		t.Fatalf("after restart: %d messages, gaps %v", len(s.Messages), s.Gaps)
	}
	for i, m := range s.Messages {
		if m.Data != body(i+1) {
			t.Fatalf("event %d after restart: %q", i+1, m.Data)
		}
	}
	reqs := front.requests()
	if len(reqs) < 2 || reqs[0] != "" || reqs[len(reqs)-1] != lastID {
		t.Fatalf("Last-Event-ID of the browser's requests: %q, want the first empty and the reconnect %q", reqs, lastID)
	}
	if s.Opens < 2 || s.Errors < 1 {
		t.Fatalf("opens %d errors %d: the browser did not reconnect by itself", s.Opens, s.Errors)
	}
	// Stream ids are offsets: strictly increasing across the restart.
	prev := int64(-1)
	for _, m := range s.Messages {
		offset, err := strconv.ParseInt(m.ID, 10, 64)
		if err != nil || offset <= prev {
			t.Fatalf("event ids %+v are not increasing offsets", s.Messages)
		}
		prev = offset
	}
}

// openPage starts a headless Chromium on url and returns a reader of window.seen and a poller
// that waits (30 s at most) until a condition on it holds.
func openPage(t *testing.T, browserPath, url string) (read func() seen, waitFor func(string, func(seen) bool) seen) {
	t.Helper()
	ctx := startBrowser(t, browserPath, url)
	read = func() seen {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[seen](`window.seen`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitFor = func(what string, cond func(seen) bool) seen {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := read()
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("browser: timed out waiting for %s; saw %+v", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return read, waitFor
}

// startBrowser starts a headless Chromium (a profile of its own, stopped with the test), loads
// url and returns the page's context, bounded to 90 s.
func startBrowser(t *testing.T, browserPath, url string) context.Context {
	t.Helper()
	opts := browsertest.AllocatorOptions(browserPath, t.TempDir())
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// TestEventSourceGetsGapAfterClassicRestart: with a classic queue the replay ring does not
// survive a restart, so the browser's Last-Event-ID is foreign to the new process: the browser
// receives an explicit gap event (its cue to refetch), then live events.
func TestEventSourceGetsGapAfterClassicRestart(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	node := rabbitmqtest.Shared(t)
	queue, exchange := "browser-q-"+events.NewID()[:8], "browser-x-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange}
	first := startBridge(t, node.URI, args...)
	front := &frontend{changed: make(chan struct{})}
	front.setBackend(&url.URL{Scheme: "http", Host: first.SSEAddr()})
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close) // after the browser is gone (cleanups run last-in first-out)
	_, waitFor := openPage(t, browserPath, srv.URL+"/")
	waitFor("the stream to open", func(s seen) bool { return s.Opens == 1 })

	pub, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(data string) {
		if err := pub.Publish(context.Background(), "team.7.job.1.status", []byte(data), publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	publish(`{"n":1}`)
	waitFor("the first event", func(s seen) bool { return len(s.Messages) == 1 })

	front.setBackend(nil)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	if err := first.Shutdown(shutdownCtx); err != nil {
		t.Fatal(err)
	}
	cancelShutdown()
	second := startBridge(t, node.URI, args...)
	front.setBackend(&url.URL{Scheme: "http", Host: second.SSEAddr()})
	waitFor("the reconnect's gap", func(s seen) bool { return len(s.Gaps) == 1 })
	publish(`{"n":2}`)
	s := waitFor("a live event after the gap", func(s seen) bool { return len(s.Messages) == 2 })
	if s.Gaps[0] != `{"reason":"unknown_id","dropped":0}` || s.Messages[1].Data != `{"n":2}` {
		t.Fatalf("gap %q, events %+v", s.Gaps, s.Messages)
	}
	if !strings.HasPrefix(s.Messages[1].ID, second.Hub.Epoch()+"-") {
		t.Fatalf("event id %q is not of the new epoch %s", s.Messages[1].ID, second.Hub.Epoch())
	}
}
