package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

var template = events.MustParseTemplate(events.DefaultRoutingKeyTemplate)

// fixedAuth returns the same principal (or error) for every request.
type fixedAuth struct {
	p   auth.Principal
	err error
}

func (a fixedAuth) Authenticate(*http.Request) (auth.Principal, error) { return a.p, a.err }

type harness struct {
	hub     *hub.Hub
	handler *Handler
	metrics *metrics.Metrics
	server  *httptest.Server
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	return newHarnessWithHub(t, hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, BufferSize: 64}, mutate)
}

// newHarnessWithHub is newHarness with a hub configured by hubCfg (OnDrop is set here).
func newHarnessWithHub(t *testing.T, hubCfg hub.Config, mutate func(*Config)) *harness {
	t.Helper()
	m := metrics.New()
	hubCfg.OnDrop = func(r string, n int) { m.Dropped.WithLabelValues(r).Add(float64(n)) }
	h := hub.New(hubCfg)
	cfg := Config{
		Hub: h, Template: template, TenantParam: "team_id", Authenticator: auth.None(), Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Heartbeat: time.Hour, Retry: time.Second,
		MaxFilterValues: 4, Rand: func() float64 { return 0.5 },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	handler, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		_ = handler.Drain(context.Background())
		srv.Close()
	})
	return &harness{hub: h, handler: handler, metrics: m, server: srv}
}

func (h *harness) publish(team, job, data string) {
	h.hub.Publish(hub.Message{RoutingKey: "team." + team + ".job." + job + ".status", Values: []string{team, job}, Data: []byte(data)})
}

// open starts a stream and returns the response and a decoder; the body closes with the test.
func (h *harness) open(t *testing.T, query string, header http.Header) (*http.Response, *sse.Decoder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.server.URL+"/?"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, sse.NewDecoder(resp.Body, 0)
}

// waitClients waits until the hub has n subscribers (the stream is registered).
func (h *harness) waitClients(t *testing.T, n int) {
	t.Helper()
	poll.Until(t, 5*time.Second, fmt.Sprintf("%d subscribers of the hub", n), func() bool { return h.hub.Len() == n })
}

func next(t *testing.T, d *sse.Decoder) sse.Message {
	t.Helper()
	type result struct {
		m   sse.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := d.Next()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("read event: %v", r.err)
		}
		return r.m
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return sse.Message{}
}

func TestStreamDeliversFilteredEvents(t *testing.T) {
	h := newHarness(t, nil)
	resp, d := h.open(t, "team_id=1", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	h.waitClients(t, 1)
	if got := testutil.ToFloat64(h.metrics.Clients); got != 1 {
		t.Errorf("clients gauge = %v", got)
	}
	h.publish("2", "7", `{"team":"2"}`)
	h.publish("1", "7", "{\"a\":\n1}")
	m := next(t, d)
	if m.Data != "{\"a\":\n1}" || m.LastEventID != "0000abcd-2" || m.Name != "message" {
		t.Fatalf("got %+v", m)
	}
	if d.Retry() != 1000 {
		t.Errorf("retry hint = %d, want 1000", d.Retry())
	}
	poll.Until(t, 5*time.Second, "1 delivered event counted", func() bool { return testutil.ToFloat64(h.metrics.Delivered) == 1 })
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		method, query string
		status        int
		body          string
	}{
		{"GET", "tenant=1", 400, `unknown query parameter "tenant"; allowed: team_id, job_id, lastEventId, snapshot, access_token`},
		{"GET", "team_id=", 400, "value must be non-empty"},
		{"GET", "team_id=a.b", 400, "without '.'"},
		{"GET", "team_id=1&team_id=2&job_id=3&job_id=4&job_id=5", 400, "too many filter values: at most 4"},
		{"GET", "lastEventId=1&lastEventId=2", 400, "give it once"},
		{"GET", "team_id=%zz", 400, "malformed query"},
		{"POST", "", 405, "use GET"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, h.server.URL+"/?"+tt.query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s ?%s = %d %q, want %d containing %q", tt.method, tt.query, resp.StatusCode, body, tt.status, tt.body)
		}
	}
	if got := testutil.ToFloat64(h.metrics.Rejected.WithLabelValues(RejectBadRequest)); got != 6 {
		t.Errorf("rejected bad_request = %v", got)
	}
}

func TestTenantScoping(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Authenticator = fixedAuth{p: auth.Principal{Subject: "u", Tenants: []string{"1", "3"}}}
	})
	// Another tenant, alone or among allowed ones: 403, nothing streamed.
	for _, q := range []string{"team_id=2", "team_id=1&team_id=2"} {
		resp, err := http.Get(h.server.URL + "/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || strings.Contains(string(body), "data:") {
			t.Errorf("?%s = %d %q", q, resp.StatusCode, body)
		}
	}
	// Without team_id: only the caller's tenants.
	_, d := h.open(t, "job_id=7", nil)
	h.waitClients(t, 1)
	h.publish("2", "7", "two")
	h.publish("1", "7", "one")
	h.publish("3", "8", "three-other-job")
	h.publish("3", "7", "three")
	if m := next(t, d); m.Data != "one" {
		t.Fatalf("first event %q, want one", m.Data)
	}
	if m := next(t, d); m.Data != "three" {
		t.Fatalf("second event %q, want three", m.Data)
	}
}

func TestAuthErrorsAnswerStatusAndMessage(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		body   string
	}{
		{&auth.Error{Status: 401, Reason: "token_expired", Message: "token expired"}, 401, "token expired"},
		{&auth.Error{Status: 403, Reason: "scope", Message: "missing scope events:read"}, 403, "missing scope"},
		{errors.New("internal detail"), 401, "authentication failed"},
	} {
		h := newHarness(t, func(c *Config) { c.Authenticator = fixedAuth{err: tt.err} })
		resp, err := http.Get(h.server.URL + "/?team_id=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) || strings.Contains(string(body), "internal detail") {
			t.Errorf("%v: %d %q", tt.err, resp.StatusCode, body)
		}
	}
	// No principal without tenants may open an unscoped stream.
	h := newHarness(t, func(c *Config) { c.Authenticator = fixedAuth{p: auth.Principal{Subject: "u"}} })
	resp, _ := http.Get(h.server.URL + "/")
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("principal without tenants: %d", resp.StatusCode)
	}
}

// principalAuth authenticates each request as the subject named by its "sub" header, reading
// every tenant.
type principalAuth struct{}

func (principalAuth) Authenticate(r *http.Request) (auth.Principal, error) {
	return auth.Principal{Subject: r.Header.Get("sub"), SubjectKey: "sub:" + r.Header.Get("sub"), AllTenants: true}, nil
}

// refusedForNow opens a stream as subject and returns its whole body, failing unless it is a
// 200 event stream that ends at once (a refusal the browser retries by itself).
func (h *harness) refusedForNow(t *testing.T, query, subject string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.server.URL+"/?"+query, nil)
	req.Header.Set("sub", subject)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body) // ends: the server closed the stream
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("refused stream %q of %s: %d %s %q", query, subject, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return string(body)
}

// TestConnectionLimits: every limit answers a 200 stream holding only a comment and a jittered
// retry: hint, so a browser comes back by itself once the limit frees; 429 would stop it for
// good. A subject at its cap does not keep another subject of the same tenant out.
func TestConnectionLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxConnections, c.MaxConnectionsPerTenant, c.MaxConnectionsPerSubject = 4, 3, 2
		c.Authenticator = principalAuth{}
	})
	as := func(subject string) http.Header { return http.Header{"Sub": {subject}} }
	h.open(t, "team_id=1", as("alice"))
	h.open(t, "team_id=1&job_id=9", as("alice"))
	h.waitClients(t, 2)

	// Per subject: alice is at her cap, in any tenant; bob of the same tenant still connects.
	if body := h.refusedForNow(t, "team_id=2", "alice"); body != ": too many open streams for this subject; retry later\n\nretry: 2000\n\n" {
		t.Fatalf("alice's third stream: %q", body)
	}
	h.open(t, "team_id=1", as("bob"))
	h.waitClients(t, 3)

	// Per tenant: tenant 1 is at its cap, for every subject.
	if body := h.refusedForNow(t, "team_id=1", "carol"); body != ": too many open streams for this team_id; retry later\n\nretry: 2000\n\n" {
		t.Fatalf("fourth stream of tenant 1: %q", body)
	}

	h.open(t, "team_id=2", as("carol"))
	h.waitClients(t, 4)
	// Total.
	if body := h.refusedForNow(t, "team_id=3", "dave"); body != ": server full\n\nretry: 2000\n\n" {
		t.Fatalf("over the total: %q", body)
	}
	for _, reason := range []string{RejectSubjectLimit, RejectTenantLimit, RejectMaxConnections} {
		if n := testutil.ToFloat64(h.metrics.Rejected.WithLabelValues(reason)); n != 1 {
			t.Errorf("rejections %s = %v, want 1", reason, n)
		}
	}
}

// TestSubjectLimitReleasedWhenStreamEnds: a subject's slot frees with its stream; a principal
// without a subject key (auth mode none) is never limited per subject.
func TestSubjectLimitReleasedWhenStreamEnds(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxConnectionsPerSubject = 1
		c.Authenticator = principalAuth{}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.server.URL+"/?team_id=1", nil)
	req.Header.Set("sub", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h.waitClients(t, 1)
	h.refusedForNow(t, "team_id=1", "alice")
	cancel()
	resp.Body.Close()
	h.waitClients(t, 0)
	h.open(t, "team_id=1", http.Header{"Sub": {"alice"}})
	h.waitClients(t, 1)

	anonymous := newHarness(t, func(c *Config) { c.MaxConnectionsPerSubject = 1 })
	anonymous.open(t, "team_id=1", nil)
	anonymous.open(t, "team_id=1", nil)
	anonymous.waitClients(t, 2)
}

func TestLimitReleasedWhenClientLeaves(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxConnectionsPerTenant = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.server.URL+"/?team_id=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h.waitClients(t, 1)
	cancel()
	resp.Body.Close()
	h.waitClients(t, 0)
	resp2, d := h.open(t, "team_id=1", nil)
	if resp2.StatusCode != 200 {
		t.Fatalf("after release: %d", resp2.StatusCode)
	}
	h.waitClients(t, 1)
	h.publish("1", "1", "x")
	next(t, d)
}

func TestStreamEndsWhenCredentialsExpire(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Authenticator = fixedAuth{p: auth.Principal{AllTenants: true, ExpiresAt: time.Now().Add(300 * time.Millisecond)}}
	})
	resp, err := http.Get(h.server.URL + "/?team_id=1")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		done <- b
	}()
	select {
	case b := <-done:
		if !strings.HasSuffix(string(b), ": credentials expired\n\nretry: 1000\n\n") {
			t.Fatalf("stream ended with %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end at expiry")
	}
	resp.Body.Close()
}

func TestDrainSendsJitteredRetryAfterPendingEvents(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rand = func() float64 { return 0.25 } })
	resp, _ := h.open(t, "team_id=1", nil)
	h.waitClients(t, 1)
	h.publish("1", "1", "last words")
	if err := h.handler.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	d := sse.NewDecoder(strings.NewReader(string(b)), 0)
	m, err := d.Next()
	if err != nil || m.Data != "last words" {
		t.Fatalf("pending event not written before drain: %q", b)
	}
	for err == nil {
		_, err = d.Next()
	}
	if d.Retry() != 1500 || !strings.Contains(string(b), ": draining\n") {
		t.Fatalf("retry = %d in %q; want 1000 + 0.25·2000", d.Retry(), b)
	}
	// New requests while draining get the same hint, never a 503.
	resp2, err := http.Get(h.server.URL + "/?team_id=1")
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 200 || !strings.Contains(string(b2), "retry: 1500") {
		t.Fatalf("request while draining: %d %q", resp2.StatusCode, b2)
	}
}

func TestResumeHeaderWinsOverQueryAndGapIsExplicit(t *testing.T) {
	h := newHarness(t, nil)
	for i := 1; i <= 3; i++ {
		h.publish("1", "1", fmt.Sprint(i))
	}
	// The EventSource reconnect keeps the original URL (lastEventId=…-1) and adds the header.
	_, d := h.open(t, "team_id=1&lastEventId=0000abcd-1", http.Header{"Last-Event-Id": {"0000abcd-2"}})
	if m := next(t, d); m.Data != "3" || m.LastEventID != "0000abcd-3" {
		t.Fatalf("resume from header: %+v", m)
	}
	_, d = h.open(t, "team_id=1&lastEventId=0000abcd-1", nil)
	if m := next(t, d); m.Data != "2" {
		t.Fatalf("resume from query: %+v", m)
	}
	_, d = h.open(t, "team_id=1", http.Header{"Last-Event-Id": {"deadbeef-2"}})
	m := next(t, d)
	if m.Name != GapEventName || m.Data != `{"reason":"unknown_id","dropped":0}` {
		t.Fatalf("foreign id: %+v", m)
	}
}

func TestHeartbeatComments(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Heartbeat = 20 * time.Millisecond })
	resp, err := http.Get(h.server.URL + "/?team_id=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	heartbeats := 0
	deadline := time.Now().Add(5 * time.Second)
	for heartbeats < 3 && time.Now().Before(deadline) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ":\n" {
			heartbeats++
		}
	}
	if heartbeats < 3 {
		t.Fatalf("saw %d heartbeats", heartbeats)
	}
}

// openStuck opens a stream on a raw connection with a small receive buffer that is never read:
// a client whose socket fills up. The connection is closed with the test.
func (h *harness) openStuck(t *testing.T, query string) {
	t.Helper()
	conn, err := net.Dial("tcp", h.server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET /?%s HTTP/1.1\r\nHost: x\r\n\r\n", query)
}

// TestSlowClientDoesNotDelayOthers: a client that never reads fills its socket and buffer;
// the hub and a fast client go on, and the drops are counted.
func TestSlowClientDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, nil)
	h.openStuck(t, "team_id=1")
	h.waitClients(t, 1)
	_, fast := h.open(t, "team_id=1", nil)
	h.waitClients(t, 2)

	// Lockstep with the fast client (so its own buffer never overflows): each event must reach
	// it promptly although the stuck client's socket and buffer are full after a few events.
	payload := strings.Repeat("x", 16<<10)
	const n = 400 // ~6.4 MB: far beyond socket buffers plus the stuck client's 64 events
	start := time.Now()
	for i := 0; i < n; i++ {
		h.publish("1", "1", payload)
		if m := next(t, fast); len(m.Data) != len(payload) {
			t.Fatalf("fast client event %d: %d bytes", i, len(m.Data))
		}
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("%d events took %v with a stuck client", n, elapsed)
	}
	if dropped := testutil.ToFloat64(h.metrics.Dropped.WithLabelValues(hub.DropReasonOverflow)); dropped == 0 {
		t.Fatal("no drops counted for the stuck client")
	}
}

// FuzzParseQuery: any query string parses or fails without panic, and an accepted one stays
// within the limits (known names, bounded values, valid segments).
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"team_id=1", "team_id=1&team_id=2&job_id=3", "lastEventId=x&access_token=t", "a=b", "team_id=%zz", "team_id=a.b", "team_id=&job_id=", ";;&&=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		sub, err := ParseQuery(raw, template, 4)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		total := 0
		for _, vals := range sub.Filter {
			total += len(vals)
			for _, v := range vals {
				if events.ValidSegmentValue(v) != nil {
					t.Fatalf("accepted invalid value %q", v)
				}
			}
		}
		if total > 4 || len(sub.Filter) != 2 {
			t.Fatalf("accepted %d values in %d filters", total, len(sub.Filter))
		}
	})
}
