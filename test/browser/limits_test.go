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
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/cors"
	"github.com/eventstream-operator/eventstream-operator/bridge/server"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/bridgetest"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// tabPage is what each tab runs: one EventSource, and a record of what happened to it.
// closedEver is set when the browser gave the stream up (readyState CLOSED on an error).
const tabPage = `<!doctype html><meta charset="utf-8"><title>tab</title><script>
window.tab = {events: [], errors: 0, closedEver: false};
function openStream(url) {
  const es = new EventSource(url);
  es.onmessage = (e) => { window.tab.events.push(e.data); };
  es.onerror = () => {
    window.tab.errors++;
    if (es.readyState === EventSource.CLOSED) window.tab.closedEver = true;
  };
  return true;
}
</script>`

type tabState struct {
	Events     []string `json:"events"`
	Errors     int      `json:"errors"`
	ClosedEver bool     `json:"closedEver"`
}

// limitsFixture is a JWT bridge (HS256, CORS open to the page's origin), a page server, a
// browser, and a publisher on the bridge's exchange.
type limitsFixture struct {
	t       *testing.T
	bridge  *app.Bridge
	secret  []byte
	page    string
	browser context.Context
	publish func(team string, n int)
}

func newLimitsFixture(t *testing.T, args ...string) *limitsFixture {
	t.Helper()
	browserPath := browsertest.Chromium(t)
	node := rabbitmqtest.Shared(t)
	queue, exchange := "limits-q-"+events.NewID()[:8], "limits-x-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	f := &limitsFixture{t: t, secret: []byte("browser-limits-test-secret-of-32-bytes-or-more")}

	pageServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, tabPage)
	}))
	t.Cleanup(pageServer.Close)
	f.page = pageServer.URL

	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, f.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	authenticator, err := auth.New(ctx, auth.Config{Mode: auth.ModeJWT, HS256SecretFile: secretFile,
		RequiredScope: auth.DefaultRequiredScope, QueryParameter: auth.DefaultQueryParameter}, logger)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := cors.New(cors.Config{AllowedOrigins: []string{f.page}})
	if err != nil {
		t.Fatal(err)
	}
	f.bridge = bridgetest.Start(t, node.URI, bridgetest.Options{Authenticator: authenticator, Logger: logger,
		Configure: func(cfg *app.Config) { cfg.Middleware = policy.Handler }},
		append(append([]string{"--queue=" + queue, "--exchange=" + exchange}, browserArgs...), args...)...)

	pub, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	f.publish = func(team string, n int) {
		body := fmt.Sprintf(`{"team":%q,"n":%d}`, team, n)
		if err := pub.Publish(context.Background(), "team."+team+".job.1.status", []byte(body), publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.browser = startBrowser(t, browserPath, f.page)
	return f
}

// tab is one browser tab holding one EventSource.
type tab struct {
	name  string
	ctx   context.Context
	close context.CancelFunc
}

// openTab opens a new tab on the page whose EventSource streams team's events with a token of
// subject (sub) granting team.
func (f *limitsFixture) openTab(name, subject, team string) *tab {
	f.t.Helper()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": subject, "teams": []string{team}, "scope": auth.DefaultRequiredScope,
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(f.secret)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := chromedp.NewContext(f.browser)
	url := "http://" + f.bridge.SSEAddr() + "/api/v1/events?team_id=" + team + "&access_token=" + token
	if _, err := chromedp.Run(ctx, chromedp.Navigate(f.page)); err != nil {
		f.t.Fatalf("open tab %s: %v", name, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("openStream(%q)", url))); err != nil {
		f.t.Fatalf("open the stream of tab %s: %v", name, err)
	}
	return &tab{name: name, ctx: ctx, close: cancel}
}

func (f *limitsFixture) state(tb *tab) tabState {
	f.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[tabState](`window.tab`))
	if err != nil {
		f.t.Fatalf("read tab %s: %v", tb.name, err)
	}
	return s
}

// waitFor polls until cond holds (30 s at most), failing at once when the tab's EventSource was
// given up (CLOSED): a limit must never make the browser stop for good. step, when set, runs
// on every poll (publishing, so that a tab that connected receives something).
func (f *limitsFixture) waitFor(tb *tab, what string, cond func(tabState) bool, step func()) tabState {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if step != nil {
			step()
		}
		s := f.state(tb)
		if s.ClosedEver {
			f.t.Fatalf("tab %s: the browser gave the stream up (CLOSED) while waiting for %s: %+v", tb.name, what, s)
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("tab %s: timed out waiting for %s; saw %+v", tb.name, what, s)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of the page state
	}
}

func (f *limitsFixture) waitClients(n int) {
	f.t.Helper()
	poll.Until(f.t, 30*time.Second, fmt.Sprintf("%d streams on the bridge", n), func() bool { return f.bridge.Hub.Len() == n })
}

func (f *limitsFixture) rejected(reason string) float64 {
	return testutil.ToFloat64(f.bridge.Metrics.Rejected.WithLabelValues(reason))
}

// receivesEvents publishes events of team until tb has received one.
func (f *limitsFixture) receivesEvents(tb *tab, team string) {
	f.t.Helper()
	n := 0
	f.waitFor(tb, "an event of team "+team, func(s tabState) bool { return len(s.Events) > 0 }, func() {
		n++
		f.publish(team, n)
	})
}

// TestBrowserRecoversFromTheSubjectLimit: a user at --max-connections-per-subject opens one
// more tab; its EventSource is refused for now, retries by itself and never reaches CLOSED,
// while another user of the same tenant still connects; when one of the first user's tabs
// closes, the waiting tab connects by itself and receives events.
func TestBrowserRecoversFromTheSubjectLimit(t *testing.T) {
	f := newLimitsFixture(t, "--max-connections-per-subject=2")
	alice1 := f.openTab("alice-1", "alice", "1")
	f.openTab("alice-2", "alice", "1")
	f.waitClients(2)

	alice3 := f.openTab("alice-3", "alice", "1")
	f.waitFor(alice3, "three refusals by the subject limit (the browser retried by itself)", func(tabState) bool {
		return f.rejected(server.RejectSubjectLimit) >= 3
	}, nil)

	bob := f.openTab("bob", "bob", "1")
	f.receivesEvents(bob, "1")
	if s := f.state(alice3); len(s.Events) != 0 {
		t.Fatalf("a refused tab received events: %+v", s)
	}

	alice1.close()
	f.receivesEvents(alice3, "1")
	f.waitClients(3)
	if s := f.state(alice3); s.Errors < 3 {
		t.Fatalf("alice-3 connected without having been refused: %+v", s)
	}
	if n := f.rejected(server.RejectTenantLimit) + f.rejected(server.RejectMaxConnections); n != 0 {
		t.Fatalf("%v refusals by other limits", n)
	}
}

// TestBrowserRecoversFromTheTenantLimit: the same for --max-connections-per-tenant: a tab over
// the tenant's cap retries by itself (never CLOSED; it used to be a final 429), a tab of another
// tenant still connects, and the waiting tab connects once a tab of its tenant closes.
func TestBrowserRecoversFromTheTenantLimit(t *testing.T) {
	f := newLimitsFixture(t, "--max-connections-per-tenant=2")
	f.openTab("alice", "alice", "1")
	bob := f.openTab("bob", "bob", "1")
	f.waitClients(2)

	carol := f.openTab("carol", "carol", "1")
	f.waitFor(carol, "three refusals by the tenant limit (the browser retried by itself)", func(tabState) bool {
		return f.rejected(server.RejectTenantLimit) >= 3
	}, nil)

	dave := f.openTab("dave", "dave", "2")
	f.receivesEvents(dave, "2")

	bob.close()
	f.receivesEvents(carol, "1")
	f.waitClients(3)
	if s := f.state(carol); s.Errors < 3 || strings.Contains(strings.Join(s.Events, ""), `"team":"2"`) {
		t.Fatalf("carol: %+v", s)
	}
}
