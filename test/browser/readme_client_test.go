package browser

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// readmeSnippetMarker precedes the README's self-contained browser client.
const readmeSnippetMarker = "<!-- test/browser runs this block in Chromium"

// readmeClient is the JavaScript block of README.md that follows readmeSnippetMarker.
func readmeClient(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(kubetest.ProjectRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), readmeSnippetMarker)
	if !ok {
		t.Fatalf("README.md has no block marked %q", readmeSnippetMarker)
	}
	_, after, ok = strings.Cut(after, "```js\n")
	if !ok {
		t.Fatal("README.md: no ```js block after the marker")
	}
	code, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("README.md: the ```js block after the marker is not closed")
	}
	return code
}

// TestReadmeClientKeepsEveryEventAcrossTokenRefreshes runs the README's browser client, as
// written, in Chromium against a bridge that requires short-lived tokens (2 s): every time a
// token expires the bridge ends the stream, the browser's own reconnect is refused with 401,
// and the client reopens with a fresh token. Events published all the while must all arrive,
// once and in order: the reopen carries the last event id.
func TestReadmeClientKeepsEveryEventAcrossTokenRefreshes(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	node := rabbitmqtest.Shared(t)
	queue, exchange := "readme-q-"+events.NewID()[:8], "readme-x-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })

	secret := []byte(strings.Repeat("readme-client-secret-", 3))
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New(context.Background(), auth.Config{
		Mode: auth.ModeJWT, HS256SecretFile: secretFile, TenantsClaim: "teams",
		RequiredScope: "events:read", QueryParameter: auth.DefaultQueryParameter,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	bridge := startBridgeWith(t, node.URI, authn, "--queue="+queue, "--exchange="+exchange)

	var tokens atomic.Int32
	backend := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: bridge.SSEAddr()})
	backend.FlushInterval = -1
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>readme</title><script>
%s
window.seen = {messages: [], gaps: []};
openEvents({
  url: "/api/v1/events?team_id=7",
  getToken: () => fetch("/token").then((r) => r.text()),
  onEvent: (e) => window.seen.messages.push(e.n),
  onGap: (g) => window.seen.gaps.push(g),
});
</script>`, readmeClient(t))
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, _ *http.Request) {
		tokens.Add(1)
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "reader", "teams": []string{"7"}, "scope": "events:read",
			"exp": time.Now().Add(2 * time.Second).Unix(),
		}).SignedString(secret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, token)
	})
	mux.Handle("/api/v1/events", backend)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := startBrowser(t, browserPath, srv.URL+"/")
	type pageSeen struct {
		Messages []int `json:"messages"`
		Gaps     []any `json:"gaps"`
	}
	read := func() pageSeen {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[pageSeen](`window.seen`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	poll.Until(t, 30*time.Second, "the page's stream to open", func() bool { return bridge.Hub.Len() == 1 })

	pub, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// Publish for long enough that at least three tokens expire mid-stream.
	const n = 200
	for i := 1; i <= n; i++ {
		if err := pub.Publish(context.Background(), "team.7.job.1.status", fmt.Appendf(nil, `{"n":%d}`, i), publish.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond) // pacing the publisher over ~8 s, not synchronisation
	}
	var s pageSeen
	poll.Within(context.Background(), 30*time.Second, 50*time.Millisecond, func() bool { s = read(); return len(s.Messages) >= n })
	for i, got := range s.Messages {
		if got != i+1 {
			t.Fatalf("event %d is n=%d (gaps %v): the client lost or repeated events across a token refresh; all: %v", i+1, got, s.Gaps, s.Messages)
		}
	}
	if len(s.Messages) != n || len(s.Gaps) != 0 {
		t.Fatalf("received %d of %d events, gaps %v", len(s.Messages), n, s.Gaps)
	}
	if got := tokens.Load(); got < 3 {
		t.Fatalf("only %d tokens were fetched: the stream was not reopened after expiry", got)
	}
	t.Logf("%d events in order across %d tokens", n, tokens.Load())
}
