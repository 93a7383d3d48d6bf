package browser

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// jobsPage is a job list kept by the snapshot protocol alone: snapshot events build the next
// state, snapshot-end replaces the state with it (a render), live events update it. It never
// asks a database.
const jobsPage = `<!doctype html><meta charset="utf-8"><title>jobs</title><script>
window.jobs = {state: {}, renders: [], gaps: [], live: 0, snapshotIds: 0, errors: []};
let next = {};
function openStream(url) {
  const es = new EventSource(url);
  es.addEventListener('snapshot', (e) => {
    const ev = JSON.parse(e.data);
    next[ev.team + '/' + ev.job] = ev.status;
    if (e.lastEventId !== (window.lastLiveId || '')) window.jobs.snapshotIds++;
  });
  es.addEventListener('snapshot-end', (e) => {
    window.jobs.state = next;
    next = {};
    window.jobs.renders.push({state: Object.assign({}, window.jobs.state), end: e.data, id: e.lastEventId});
    window.lastLiveId = e.lastEventId;
  });
  es.addEventListener('gap', (e) => { window.jobs.gaps.push(e.data); });
  es.onerror = () => { window.jobs.errors.push(es.readyState); };
  es.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    window.jobs.state[ev.team + '/' + ev.job] = ev.status;
    window.jobs.live++;
    window.lastLiveId = e.lastEventId;
  };
}
</script>`

type jobsState struct {
	State   map[string]string `json:"state"`
	Renders []struct {
		State map[string]string `json:"state"`
		End   string            `json:"end"`
		ID    string            `json:"id"`
	} `json:"renders"`
	Gaps        []string `json:"gaps"`
	Live        int      `json:"live"`
	SnapshotIDs int      `json:"snapshotIds"`
	Errors      []int    `json:"errors"`
}

// pausableProxy serves jobsPage and proxies the stream to the bridge; while paused it stops
// reading from the bridge, so the bridge's writes block and the client's buffer overflows: a
// slow client, made on purpose. (A tiny receive buffer would stall loopback TCP, whose segments
// are larger than such a window, for the persist timer's whole backoff.)
type pausableProxy struct {
	bridge string
	mu     sync.Mutex
	paused bool
	resume chan struct{}
}

func (p *pausableProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused, p.resume = true, make(chan struct{})
}

func (p *pausableProxy) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	close(p.resume)
}

func (p *pausableProxy) wait(ctx context.Context) {
	p.mu.Lock()
	paused, resume := p.paused, p.resume
	p.mu.Unlock()
	if paused {
		select {
		case <-resume:
		case <-ctx.Done():
		}
	}
}

func (p *pausableProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, jobsPage)
		return
	}
	transport := &http.Transport{DisableCompression: true}
	defer transport.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+p.bridge+r.URL.RequestURI(), nil)
	req.Header = r.Header.Clone()
	resp, err := transport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	flusher := w.(http.Flusher)
	flusher.Flush()
	buf := make([]byte, 4096)
	for {
		p.wait(r.Context())
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			flusher.Flush()
		}
		if err != nil {
			return
		}
	}
}

// TestBrowserJobListFromSnapshot (issue 15): Chromium opens a job list after 200 jobs of team
// 42 (and 20 of team 43) changed state five times each, with a token for team 42 and
// snapshot=1. Its first render shows exactly the 200 latest statuses of team 42 and none of
// team 43; live updates follow. Then the page becomes a slow client (its connection stops
// being read) while 1,500 more changes are published: its buffer overflows, it gets a gap,
// then a snapshot, and ends with exactly the current state of every job — without a database.
func TestBrowserJobListFromSnapshot(t *testing.T) {
	const jobs = 200
	browserPath := browsertest.Chromium(t)
	node := rabbitmqtest.Shared(t)
	queue, exchange := "snapshot-q-"+events.NewID()[:8], "snapshot-x-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })

	secret := []byte("browser-snapshot-test-secret-of-32-bytes-or-more")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	authenticator, err := auth.New(ctx, auth.Config{Mode: auth.ModeJWT, HS256SecretFile: secretFile,
		RequiredScope: auth.DefaultRequiredScope, QueryParameter: auth.DefaultQueryParameter}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b := startBridgeWith(t, node.URI, authenticator, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream",
		"--snapshot-max-keys=1000", "--buffer-size=8")

	pub, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	latest := map[string]string{} // team/job → status, team 42 only
	padding := strings.Repeat("x", 1500)
	send := func(team string, job, version int) *publish.Confirmation {
		status := fmt.Sprintf("s%d", version)
		body := fmt.Sprintf(`{"team":%q,"job":"%d","status":%q,"padding":%q}`, team, job, status, padding)
		c, err := pub.PublishDeferred(context.Background(), fmt.Sprintf("team.%s.job.%d.status", team, job), []byte(body), publish.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if team == "42" {
			latest[fmt.Sprintf("42/%d", job)] = status
		}
		return c
	}
	confirm := func(cs []*publish.Confirmation) {
		for _, c := range cs {
			if err := c.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	var inFlight []*publish.Confirmation
	for v := 1; v <= 5; v++ {
		for j := 0; j < jobs; j++ {
			inFlight = append(inFlight, send("42", j, v))
			if j < 20 {
				inFlight = append(inFlight, send("43", j, v))
			}
		}
	}
	confirm(inFlight)
	consumed := float64(5 * (jobs + 20))
	waitUntil(t, "the bridge consumed the history", func() bool { return testutil.ToFloat64(b.Metrics.Consumed) >= consumed })

	proxy := &pausableProxy{bridge: b.SSEAddr()}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "page", "teams": []string{"42"}, "scope": auth.DefaultRequiredScope, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	browser := startBrowser(t, browserPath, front.URL+"/")
	if _, err := chromedp.Run(browser, chromedp.Evaluate[any](fmt.Sprintf("openStream(%q)", "/api/v1/events?snapshot=1&access_token="+token))); err != nil {
		t.Fatal(err)
	}
	read := func() jobsState {
		s, err := chromedp.Run(browser, chromedp.Evaluate[jobsState](`window.jobs`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var s jobsState
	waitUntil(t, "the first render", func() bool { s = read(); return len(s.Renders) > 0 })
	first := s.Renders[0]
	if !equalStates(first.State, latest) {
		t.Fatalf("first render: %d jobs, want the 200 latest statuses of team 42 (%s)", len(first.State), diffStates(first.State, latest))
	}
	if first.End != fmt.Sprintf(`{"keys":%d,"partial":false}`, jobs) || first.ID == "" || s.SnapshotIDs != 0 {
		t.Errorf("first snapshot-end %s id %q, %d snapshot events moved the last event id", first.End, first.ID, s.SnapshotIDs)
	}

	// Live updates after the render.
	inFlight = []*publish.Confirmation{send("42", 7, 6), send("43", 7, 6), send("42", 8, 6)}
	confirm(inFlight)
	waitUntil(t, "two live updates", func() bool { s = read(); return s.Live >= 2 })
	if s.Live != 2 || !equalStates(s.State, latest) {
		t.Fatalf("after live updates: %d live events, state %s", s.Live, diffStates(s.State, latest))
	}

	// A slow client: the page's connection is not read while 1,500 changes are published.
	proxy.pause()
	pausedAt := time.Now()
	dropped := func() float64 { return testutil.ToFloat64(b.Metrics.Dropped.WithLabelValues("overflow")) }
	inFlight = nil
	for i := 0; i < 1500; i++ {
		inFlight = append(inFlight, send("42", i%jobs, 7+i/jobs))
		if i%10 == 0 {
			inFlight = append(inFlight, send("43", i%20, 7+i/jobs))
		}
	}
	confirm(inFlight)
	waitUntil(t, "the page's buffer to overflow", func() bool { return dropped() > 0 })
	proxy.unpause()
	pausedFor := time.Since(pausedAt)
	recovered := func() bool {
		s = read()
		return len(s.Gaps) > 0 && len(s.Renders) > 1 && equalStates(s.State, latest)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !recovered() {
		if time.Now().After(deadline) {
			t.Fatalf("the page did not recover the current state (paused %s): gaps %q, %d renders, %d live, errors %v, state %s; bridge consumed %v, clients %v",
				pausedFor, s.Gaps, len(s.Renders), s.Live, s.Errors, diffStates(s.State, latest), testutil.ToFloat64(b.Metrics.Consumed), testutil.ToFloat64(b.Metrics.Clients))
		}
		time.Sleep(50 * time.Millisecond) // poll, bounded by the deadline
	}
	if !strings.Contains(s.Gaps[0], `"reason":"overflow"`) {
		t.Errorf("gap %s, want an overflow", s.Gaps[0])
	}
	for _, r := range s.Renders {
		for key := range r.State {
			if !strings.HasPrefix(key, "42/") {
				t.Fatalf("a render holds %s of another team", key)
			}
		}
	}
	t.Logf("slow page: %d overflow drops, %d gaps, %d renders, %d live events", int(dropped()), len(s.Gaps), len(s.Renders), s.Live)
}

func equalStates(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// diffStates describes how got differs from want (a few keys).
func diffStates(got, want map[string]string) string {
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s=%q want %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s=%q", k, v))
		}
	}
	return fmt.Sprintf("%d keys, %d differences: %s", len(got), len(diffs), strings.Join(diffs[:min(5, len(diffs))], ", "))
}

// waitUntil polls cond until it holds (60 s at most).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // poll, bounded by the deadline
	}
}
