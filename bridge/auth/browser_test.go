package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/cors"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// browserPage is the page the browser runs: it opens EventSource streams and records what
// happens to each, for the test to read.
const browserPage = `<!doctype html><meta charset="utf-8"><title>auth</title><script>
window.streams = {};
function openStream(name, url, withCredentials) {
  const s = {events: [], errors: 0, opened: false, state: 0};
  window.streams[name] = s;
  const es = new EventSource(url, {withCredentials: !!withCredentials});
  s.es = es;
  es.onopen = () => { s.opened = true; s.state = es.readyState; };
  es.onmessage = (e) => { s.events.push(e.data); };
  es.onerror = () => { s.errors++; s.state = es.readyState; };
  return true;
}
function streamState(name) {
  const s = window.streams[name];
  return {events: s.events, errors: s.errors, opened: s.opened, state: s.es.readyState};
}
</script>`

type streamState struct {
	Events []string `json:"events"`
	Errors int      `json:"errors"`
	Opened bool     `json:"opened"`
	State  int      `json:"state"` // 0 CONNECTING, 1 OPEN, 2 CLOSED
}

// requestCounter counts stream requests by their job_id query value, which each browser case
// sets to its own number.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts[r.URL.Query().Get("job_id")]++
		c.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (c *requestCounter) count(jobID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[jobID]
}

// TestBrowserEventSourceWithQueryToken runs headless Chromium against the bridge from a page on
// another origin (so CORS is real): an EventSource with tenant A's token in the query receives
// A's events and none of B's; on 401, 403 and a refused origin the browser gives up for good
// (readyState CLOSED) after exactly one request. withCredentials works only against a bridge
// that allows credentials for the page's origin, and then a cookie can carry the token.
func TestBrowserEventSourceWithQueryToken(t *testing.T) {
	browser := browsertest.Chromium(t)
	node := rabbitmqtest.Shared(t)
	iss := newIssuer(t)

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(browserPage))
	}))
	defer page.Close()
	foreignPage := httptest.NewServer(page.Config.Handler) // same page, an origin not allowed
	defer foreignPage.Close()

	counter := &requestCounter{counts: map[string]int{}}
	policy, err := cors.New(cors.Config{AllowedOrigins: []string{page.URL}})
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, node, auth.Config{
		Mode: auth.ModeJWT, JWKSURL: iss.server.URL, Audience: []string{"eventstream"}, Issuer: "https://issuer.test",
		TenantsClaim: "teams", RequiredScope: "events:read", QueryParameter: "access_token",
	}, func(cfg *app.Config) {
		cfg.Middleware = func(next http.Handler) http.Handler { return counter.wrap(policy.Handler(next)) }
	})

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The first action starts the browser; it runs without a deadline, which would end the
	// browser (chromedp.Run's rule). Later actions share the 60s deadline.
	if _, err := chromedp.Run(browserCtx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("start browser and load page: %v", err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, 60*time.Second)
	defer cancel()

	streamURL := func(token string, query url.Values) string {
		query.Set("access_token", token)
		return b.base + "?" + query.Encode()
	}
	state := func(ctx context.Context, name string) streamState {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[streamState](fmt.Sprintf("streamState(%q)", name)))
		if err != nil {
			t.Fatalf("read stream %s: %v", name, err)
		}
		return s
	}
	waitFor := func(ctx context.Context, name string, cond func(streamState) bool, what string) streamState {
		t.Helper()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			s := state(ctx, name)
			if cond(s) {
				return s
			}
			select {
			case <-ctx.Done():
				t.Fatalf("stream %s: %s did not happen; last state %+v", name, what, s)
			case <-tick.C:
			}
		}
	}
	open := func(ctx context.Context, name, url string, withCredentials ...bool) {
		t.Helper()
		credentials := len(withCredentials) > 0 && withCredentials[0]
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("openStream(%q, %q, %t)", name, url, credentials))); err != nil {
			t.Fatalf("open stream %s: %v", name, err)
		}
	}

	valid := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", nil)
	expired := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
	refusals := []struct{ name, url, jobID string }{
		{"unauthorized", streamURL(expired, url.Values{"job_id": {"401"}}), "401"},
		{"forbidden", streamURL(valid, url.Values{"team_id": {tenantB}, "job_id": {"403"}}), "403"},
	}
	for _, r := range refusals {
		open(ctx, r.name, r.url)
	}
	for _, r := range refusals {
		s := waitFor(ctx, r.name, func(s streamState) bool { return s.State == 2 }, "CLOSED")
		if s.Opened || len(s.Events) != 0 || s.Errors != 1 {
			t.Fatalf("stream %s: %+v, want one error, never open, no events", r.name, s)
		}
	}

	// From an origin the bridge does not allow, the same valid token is refused.
	foreignCtx, cancelForeign := chromedp.NewContext(browserCtx)
	defer cancelForeign()
	if _, err := chromedp.Run(foreignCtx, chromedp.Navigate(foreignPage.URL)); err != nil {
		t.Fatalf("load foreign page: %v", err)
	}
	open(foreignCtx, "foreign", streamURL(valid, url.Values{"job_id": {"999"}}))
	waitFor(foreignCtx, "foreign", func(s streamState) bool { return s.State == 2 }, "CLOSED")

	// Tenant A's stream: open, then events of both tenants are published in order.
	open(ctx, "tenantA", streamURL(valid, url.Values{"job_id": {"1"}}))
	if s := waitFor(ctx, "tenantA", func(s streamState) bool { return s.State != 0 }, "OPEN or CLOSED"); s.State != 1 {
		t.Fatalf("tenant A's stream did not open: %+v", s)
	}
	marker := strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	for _, m := range []struct{ tenant, name string }{{tenantB, "B1"}, {tenantA, "A1"}, {tenantB, "B2"}, {tenantA, "A2"}} {
		body := []byte(`{"tenant":"` + m.tenant + `","marker":"` + marker + m.name + `"}`)
		if err := b.publisher.Publish(ctx, "team."+m.tenant+".job.1.status", body, publish.PublishOptions{}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	s := waitFor(ctx, "tenantA", func(s streamState) bool {
		return len(s.Events) > 0 && strings.Contains(s.Events[len(s.Events)-1], marker+"A2")
	}, "event A2 arrived")
	joined := strings.Join(s.Events, "\n")
	if strings.Contains(joined, `"tenant":"`+tenantB+`"`) || !strings.Contains(joined, marker+"A1") {
		t.Fatalf("tenant A's browser got %q; want A1 and A2 only", s.Events)
	}

	// By now (several round trips later) a browser that retried would have asked again.
	for _, r := range refusals {
		if n := counter.count(r.jobID); n != 1 {
			t.Fatalf("stream %s: the bridge saw %d requests, want exactly 1 (the browser must not retry)", r.name, n)
		}
		if st := state(ctx, r.name); st.State != 2 {
			t.Fatalf("stream %s: readyState %d, want CLOSED", r.name, st.State)
		}
	}
	if n := counter.count("999"); n != 1 {
		t.Fatalf("refused origin: the bridge saw %d requests, want 1", n)
	}
	if n := counter.count("1"); n != 1 {
		t.Fatalf("tenant A's stream: the bridge saw %d requests, want 1 (no reconnects)", n)
	}

	// withCredentials against a bridge that does not allow credentials: the browser refuses
	// the response (no Access-Control-Allow-Credentials) although the token is valid.
	open(ctx, "credentialsRefused", streamURL(valid, url.Values{"job_id": {"2"}}), true)
	if s := waitFor(ctx, "credentialsRefused", func(s streamState) bool { return s.State == 2 }, "CLOSED"); s.Opened || len(s.Events) > 0 {
		t.Fatalf("credentialed stream against a bridge without credentials: %+v", s)
	}

	// A bridge that allows credentials for this origin, reading the token from a cookie only:
	// the page's cookie goes along with withCredentials and tenant A's events arrive.
	cookieCounter := &requestCounter{counts: map[string]int{}}
	credentialsPolicy, err := cors.New(cors.Config{AllowedOrigins: []string{page.URL}, AllowCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	cookieBridge := startBridge(t, node, auth.Config{
		Mode: auth.ModeJWT, JWKSURL: iss.server.URL, Audience: []string{"eventstream"}, Issuer: "https://issuer.test",
		TenantsClaim: "teams", RequiredScope: "events:read", Cookie: "evs_token",
	}, func(cfg *app.Config) {
		cfg.Middleware = func(next http.Handler) http.Handler { return cookieCounter.wrap(credentialsPolicy.Handler(next)) }
	})
	setCookie := fmt.Sprintf("document.cookie = %q; true", "evs_token="+valid+"; path=/; SameSite=Lax")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](setCookie)); err != nil {
		t.Fatalf("set cookie: %v", err)
	}
	open(ctx, "cookie", cookieBridge.base+"?job_id=3", true)
	if s := waitFor(ctx, "cookie", func(s streamState) bool { return s.State != 0 }, "OPEN or CLOSED"); s.State != 1 {
		t.Fatalf("cookie stream did not open: %+v", s)
	}
	for _, m := range []struct{ tenant, name string }{{tenantB, "B3"}, {tenantA, "A3"}} {
		body := []byte(`{"tenant":"` + m.tenant + `","marker":"` + marker + m.name + `"}`)
		if err := cookieBridge.publisher.Publish(ctx, "team."+m.tenant+".job.3.status", body, publish.PublishOptions{}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	s = waitFor(ctx, "cookie", func(s streamState) bool {
		return len(s.Events) > 0 && strings.Contains(s.Events[len(s.Events)-1], marker+"A3")
	}, "event A3 arrived")
	if strings.Contains(strings.Join(s.Events, "\n"), `"tenant":"`+tenantB+`"`) {
		t.Fatalf("cookie stream got tenant B's events: %q", s.Events)
	}
	if n := cookieCounter.count("3"); n != 1 {
		t.Fatalf("cookie stream: the bridge saw %d requests, want 1", n)
	}
}
