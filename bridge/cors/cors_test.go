package cors

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func policy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// streamed counts requests that reached the wrapped handler.
type streamed struct{ calls int }

func (s *streamed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls++
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = w.Write([]byte(":ok\n\n"))
}

func serve(h http.Handler, method, origin string, headers map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/api/v1/events", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestExplicitOriginsWithCredentials(t *testing.T) {
	next := &streamed{}
	h := policy(t, Config{AllowedOrigins: []string{"https://App.example.com:443", "http://localhost:3000"}, AllowCredentials: true, MaxAge: time.Minute}).Handler(next)

	w := serve(h, http.MethodGet, "https://app.example.com", nil)
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		w.Header().Get("Access-Control-Allow-Credentials") != "true" || !slices.Contains(w.Header().Values("Vary"), "Origin") {
		t.Fatalf("allowed GET: %d %v", w.Code, w.Header())
	}

	w = serve(h, http.MethodGet, "https://evil.example.com", nil)
	if w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin: %d %v", w.Code, w.Header())
	}
	for _, origin := range []string{"null", "https://app.example.com.evil.com", "http://app.example.com", "http://localhost:3001"} {
		if w := serve(h, http.MethodGet, origin, nil); w.Code != http.StatusForbidden {
			t.Fatalf("origin %q: %d, want 403", origin, w.Code)
		}
	}

	w = serve(h, http.MethodOptions, "http://localhost:3000", map[string]string{
		"Access-Control-Request-Method":  "GET",
		"Access-Control-Request-Headers": "authorization,last-event-id,cache-control",
	})
	allowHeaders := strings.ToLower(w.Header().Get("Access-Control-Allow-Headers"))
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		w.Header().Get("Access-Control-Allow-Methods") != "GET" || w.Header().Get("Access-Control-Max-Age") != "60" ||
		!strings.Contains(allowHeaders, "last-event-id") || !strings.Contains(allowHeaders, "authorization") ||
		!strings.Contains(allowHeaders, "cache-control") {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	if w := serve(h, http.MethodOptions, "http://localhost:3000", map[string]string{"Access-Control-Request-Method": "POST"}); w.Code != http.StatusForbidden {
		t.Fatalf("preflight for POST: %d, want 403", w.Code)
	}
	if w := serve(h, http.MethodOptions, "https://evil.example.com", map[string]string{"Access-Control-Request-Method": "GET"}); w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", w.Code, w.Header())
	}

	w = serve(h, http.MethodGet, "", nil)
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("same-origin GET: %d %v", w.Code, w.Header())
	}
	// Two allowed GETs, one same-origin GET; preflights and refusals never reach the stream.
	if next.calls != 2 {
		t.Fatalf("stream handler ran %d times, want 2", next.calls)
	}
}

func TestWildcardNeverWithCredentials(t *testing.T) {
	if _, err := New(Config{AllowedOrigins: []string{"*"}, AllowCredentials: true}); err == nil {
		t.Fatal(`"*" with credentials was accepted`)
	}
	h := policy(t, Config{AllowedOrigins: []string{"*"}}).Handler(&streamed{})
	w := serve(h, http.MethodGet, "https://anyone.example", nil)
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("wildcard GET: %d %v", w.Code, w.Header())
	}
}

func TestConfigValidation(t *testing.T) {
	for _, origin := range []string{"app.example.com", "https://app.example.com/path", "ftp://x", "https://user@app.example.com", "https://app.example.com?x=1"} {
		if _, err := New(Config{AllowedOrigins: []string{origin}}); err == nil {
			t.Fatalf("origin %q accepted", origin)
		}
	}
	if _, err := New(Config{AllowCredentials: true}); err == nil {
		t.Fatal("credentials without origins accepted")
	}
	next := &streamed{}
	if h := policy(t, Config{}).Handler(next); h != http.Handler(next) {
		t.Fatal("without origins the handler should be next itself")
	}

	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	var cfg Config
	RegisterFlags(fs, &cfg)
	if err := fs.Parse([]string{"--cors-allowed-origins=https://a.example, http://localhost:3000", "--cors-allow-credentials"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.AllowedOrigins, []string{"https://a.example", "http://localhost:3000"}) || !cfg.AllowCredentials || cfg.MaxAge != DefaultMaxAge {
		t.Fatalf("flags = %+v", cfg)
	}
}
