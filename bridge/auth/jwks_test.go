package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

func newJWKSAuthenticator(t *testing.T, ctx context.Context, cfg Config) (*jwtAuthenticator, *jwksKeys) {
	t.Helper()
	a, err := New(ctx, cfg, discardLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ja := a.(*jwtAuthenticator)
	return ja, ja.keys.(*jwksKeys)
}

func TestJWKSMatrix(t *testing.T) {
	testKeys(t)
	server := newJWKSServer(t,
		jwkOf(&rsaKeyA.PublicKey, "rsa-a", "RS256"),
		jwkOf(&ecKeyA.PublicKey, "ec-a", ""),
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},                       // symmetric: skipped
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}, // encryption: skipped
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, keys := newJWKSAuthenticator(t, ctx, Config{
		Mode: ModeJWT, JWKSURL: server.URL, Algorithms: []string{"RS256", "RS384", "ES256"},
		JWKSMinRefreshGap: time.Hour, JWKSRefreshInterval: time.Hour,
	})

	for _, token := range []string{
		sign(t, jwt.SigningMethodRS256, rsaKeyA, "rsa-a", validClaims()),
		sign(t, jwt.SigningMethodES256, ecKeyA, "ec-a", validClaims()),
		sign(t, jwt.SigningMethodES256, ecKeyA, "", validClaims()), // no kid: every fitting key is tried
	} {
		if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	}

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"HS256 with the public key as secret", sign(t, jwt.SigningMethodHS256, publicKeyPEM(t, &rsaKeyA.PublicKey), "rsa-a", validClaims()), ReasonAlgorithmNotAllowed},
		{"HS256 with the JWKS oct key", sign(t, jwt.SigningMethodHS256, []byte("secret"), "hmac", validClaims()), ReasonAlgorithmNotAllowed},
		{"alg none", unsignedToken(t, map[string]any{"alg": "none", "kid": "rsa-a"}, validClaims()), ReasonAlgorithmNotAllowed},
		{"signed by another key under a known kid", sign(t, jwt.SigningMethodRS256, rsaKeyB, "rsa-a", validClaims()), ReasonBadSignature},
		{"JWK alg RS256 but token RS384", sign(t, jwt.SigningMethodRS384, rsaKeyA, "rsa-a", validClaims()), ReasonBadSignature},
		{"ES256 under an RSA kid", sign(t, jwt.SigningMethodES256, ecKeyA, "rsa-a", validClaims()), ReasonBadSignature},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, rsaKeyB, "rsa-b", validClaims()), ReasonUnknownKID},
		{"skipped encryption key", sign(t, jwt.SigningMethodRS256, rsaKeyA, "enc", validClaims()), ReasonUnknownKID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(requestWithBearer(tc.token))
			wantError(t, err, tc.token, 401, tc.reason)
		})
	}

	// The first unknown kid above caused one on-demand fetch; a spray of invented kids within
	// the minimum gap causes none.
	before := server.fetches.Load()
	for i := range 200 {
		token := sign(t, jwt.SigningMethodRS256, rsaKeyB, "sprayed-"+strings.Repeat("x", i%7)+string(rune('a'+i%26)), validClaims())
		_, err := a.Authenticate(requestWithBearer(token))
		wantError(t, err, token, 401, ReasonUnknownKID)
	}
	if after := server.fetches.Load(); after != before {
		t.Fatalf("unknown kids caused %d JWKS fetches within the minimum gap, want 0", after-before)
	}
	if got := server.fetches.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times (start + one unknown kid), want 2", got)
	}
	_ = keys
}

func TestJWKSRotationPicksUpNewKidOnDemand(t *testing.T) {
	testKeys(t)
	server := newJWKSServer(t, jwkOf(&rsaKeyA.PublicKey, "2026-01", "RS256"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, keys := newJWKSAuthenticator(t, ctx, Config{
		Mode: ModeJWT, JWKSURL: server.URL, JWKSMinRefreshGap: time.Minute, JWKSRefreshInterval: time.Hour,
	})
	now := time.Now()
	var clockMu sync.Mutex
	keys.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }

	// The issuer publishes the next key next to the current one, then signs with it.
	server.setKeys(jwkOf(&rsaKeyA.PublicKey, "2026-01", "RS256"), jwkOf(&rsaKeyB.PublicKey, "2026-02", "RS256"))
	next := sign(t, jwt.SigningMethodRS256, rsaKeyB, "2026-02", validClaims())
	if _, err := a.Authenticate(requestWithBearer(next)); err != nil {
		t.Fatalf("token with the new kid: %v", err)
	}
	current := sign(t, jwt.SigningMethodRS256, rsaKeyA, "2026-01", validClaims())
	if _, err := a.Authenticate(requestWithBearer(current)); err != nil {
		t.Fatalf("token with the old kid during the overlap: %v", err)
	}

	// The old key is withdrawn; once the set is refetched its tokens are refused.
	server.setKeys(jwkOf(&rsaKeyB.PublicKey, "2026-02", "RS256"))
	if err := keys.fetch(ctx); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	_, err := a.Authenticate(requestWithBearer(current))
	wantError(t, err, current, 401, ReasonUnknownKID)

	// A kid the issuer has not published yet is refused without a fetch inside the gap, and
	// fetched for once the gap has passed.
	fetches := server.fetches.Load()
	future := sign(t, jwt.SigningMethodRS256, rsaKeyA, "2026-03", validClaims())
	_, err = a.Authenticate(requestWithBearer(future))
	wantError(t, err, future, 401, ReasonUnknownKID)
	if server.fetches.Load() != fetches {
		t.Fatal("unknown kid inside the gap fetched the JWKS")
	}
	server.setKeys(jwkOf(&rsaKeyB.PublicKey, "2026-02", "RS256"), jwkOf(&rsaKeyA.PublicKey, "2026-03", "RS256"))
	clockMu.Lock()
	now = now.Add(time.Minute)
	clockMu.Unlock()
	if _, err := a.Authenticate(requestWithBearer(future)); err != nil {
		t.Fatalf("token with a kid published after the gap: %v", err)
	}
}

func TestJWKSEndpointDown(t *testing.T) {
	testKeys(t)
	server := newJWKSServer(t, jwkOf(&rsaKeyA.PublicKey, "k1", "RS256"))
	server.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, keys := newJWKSAuthenticator(t, ctx, Config{
		Mode: ModeJWT, JWKSURL: server.URL, JWKSMinRefreshGap: time.Minute, JWKSRefreshInterval: time.Hour,
	})
	now := time.Now()
	var clockMu sync.Mutex
	keys.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }

	token := sign(t, jwt.SigningMethodRS256, rsaKeyA, "k1", validClaims())
	for range 20 {
		_, err := a.Authenticate(requestWithBearer(token))
		wantError(t, err, token, 401, ReasonJWKSUnavailable)
	}
	if got := server.fetches.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times while down (start + one on demand), want 2", got)
	}

	server.down.Store(false)
	clockMu.Lock()
	now = now.Add(time.Minute)
	clockMu.Unlock()
	if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
		t.Fatalf("after the endpoint came back: %v", err)
	}

	// Down again: the last good set stays in use.
	server.down.Store(true)
	if err := keys.fetch(ctx); err == nil {
		t.Fatal("fetch from a down endpoint succeeded")
	}
	if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
		t.Fatalf("with the endpoint down after a good fetch: %v", err)
	}
}

func TestJWKSFetchIsBounded(t *testing.T) {
	testKeys(t)
	t.Run("oversize document", func(t *testing.T) {
		huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 4096) + `]}`))
		}))
		defer huge.Close()
		keys, err := newJWKSKeys(Config{JWKSURL: huge.URL, JWKSMaxBytes: 1024, JWKSFetchTimeout: time.Second}, discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
			t.Fatalf("fetch = %v, want a size error", err)
		}
	})
	t.Run("endpoint that never answers", func(t *testing.T) {
		release := make(chan struct{})
		hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer hanging.Close()
		defer close(release)
		keys, err := newJWKSKeys(Config{JWKSURL: hanging.URL, JWKSMaxBytes: 1024, JWKSFetchTimeout: 200 * time.Millisecond}, discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := keys.fetch(context.Background()); err == nil {
			t.Fatal("fetch from a hanging endpoint succeeded")
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("fetch took %v, want about the 200ms timeout", elapsed)
		}
	})
	t.Run("not a key set", func(t *testing.T) {
		if _, _, err := parseJWKSet([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
			t.Fatal("a set of only symmetric keys was accepted")
		}
		if _, _, err := parseJWKSet([]byte(`<html>`)); err == nil {
			t.Fatal("HTML was accepted as a key set")
		}
	})
}

func TestJWKSRefresherRefreshesAndStops(t *testing.T) {
	testKeys(t)
	server := newJWKSServer(t, jwkOf(&rsaKeyA.PublicKey, "k1", "RS256"))
	ctx, cancel := context.WithCancel(context.Background())
	_, keys := newJWKSAuthenticator(t, ctx, Config{
		Mode: ModeJWT, JWKSURL: server.URL, JWKSRefreshInterval: 20 * time.Millisecond, JWKSMinRefreshGap: time.Hour,
	})
	poll.Until(t, 5*time.Second, "4 fetches by the background refresh", func() bool { return server.fetches.Load() >= 4 })
	cancel()
	select {
	case <-keys.done:
	case <-time.After(5 * time.Second):
		t.Fatal("refresh goroutine still running 5s after its context ended")
	}
}

// TestJWKSConcurrentUnknownKIDsFetchOnce: a burst of requests with invented key ids from many
// goroutines causes at most one fetch, and every request gets its 401.
func TestJWKSConcurrentUnknownKIDsFetchOnce(t *testing.T) {
	testKeys(t)
	server := newJWKSServer(t, jwkOf(&rsaKeyA.PublicKey, "k1", "RS256"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := newJWKSAuthenticator(t, ctx, Config{
		Mode: ModeJWT, JWKSURL: server.URL, JWKSMinRefreshGap: time.Hour, JWKSRefreshInterval: time.Hour,
	})
	before := server.fetches.Load()
	tokens := make([]string, 64)
	for i := range tokens {
		tokens[i] = sign(t, jwt.SigningMethodRS256, rsaKeyB, "invented-"+strings.Repeat("k", i+1), validClaims())
	}
	errs := make(chan error, len(tokens))
	var wg sync.WaitGroup
	for _, token := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Authenticate(requestWithBearer(token))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantError(t, err, "", 401, ReasonUnknownKID)
	}
	if fetched := server.fetches.Load() - before; fetched > 1 {
		t.Fatalf("%d concurrent unknown kids caused %d fetches, want at most 1", len(tokens), fetched)
	}
}
