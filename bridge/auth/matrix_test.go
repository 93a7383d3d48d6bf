package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/bridgetest"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// Tenants of the matrix: the token of tenant A grants team 42 only; B is team 43.
const (
	tenantA = "42"
	tenantB = "43"
)

// issuer is a JWKS endpoint with one RSA signing key, "key-1". Setting down makes it answer 503.
type issuer struct {
	key    *rsa.PrivateKey
	server *httptest.Server
	down   atomic.Bool
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{key: key}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "key-1", "use": "sig", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	iss.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if iss.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(iss.server.Close)
	return iss
}

func (iss *issuer) claims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "user-a", "aud": "eventstream", "iss": "https://issuer.test",
		"teams": []any{tenantA}, "scope": "events:read",
		"exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Add(-time.Minute).Unix(),
	}
}

func (iss *issuer) sign(t *testing.T, method jwt.SigningMethod, key any, kid string, change func(jwt.MapClaims)) string {
	t.Helper()
	claims := iss.claims()
	if change != nil {
		change(claims)
	}
	token := jwt.NewWithClaims(method, claims)
	if kid != "" {
		token.Header["kid"] = kid
	}
	signed, err := token.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// bridge is a running bridge (app.Start: consumer, hub, the real SSE handler) on its own queue.
type bridge struct {
	*app.Bridge
	metrics   *metrics.Metrics
	publisher *publish.Publisher
	base      string
	logs      *clitest.Output // everything the bridge logged, at debug level
}

// startBridge starts a bridge authenticating with authCfg; configure, when given, adjusts the
// bridge configuration before the start (CORS middleware, request counting).
func startBridge(t *testing.T, node *rabbitmqtest.Node, authCfg auth.Config, configure ...func(*app.Config)) *bridge {
	t.Helper()
	name := "auth-matrix-" + events.NewID()[:12]
	logs := &clitest.Output{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	authenticator, err := auth.New(ctx, authCfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	authMetrics, err := auth.NewMetrics(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, name, name) })
	b := bridgetest.Start(t, node.URI, bridgetest.Options{Authenticator: authenticator, Logger: logger,
		Configure: func(cfg *app.Config) {
			cfg.Metrics, cfg.AuthMetrics = m, authMetrics
			for _, change := range configure {
				change(cfg)
			}
		}},
		"--exchange="+name, "--queue="+name, "--log-level=debug")
	publisher, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = publisher.Close() })
	return &bridge{Bridge: b, metrics: m, publisher: publisher, base: "http://" + b.SSEAddr() + "/api/v1/events", logs: logs}
}

func (b *bridge) publish(t *testing.T, tenant, marker string) {
	t.Helper()
	body := []byte(`{"tenant":"` + tenant + `","marker":"` + marker + `"}`)
	if err := b.publisher.Publish(context.Background(), "team."+tenant+".job.1.status", body, publish.PublishOptions{}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// open requests the stream with token in the query (as EventSource must) and extra query.
func (b *bridge) open(t *testing.T, ctx context.Context, token, query string) *http.Response {
	t.Helper()
	q := url.Values{}
	if token != "" {
		q.Set("access_token", token)
	}
	raw := q.Encode()
	if query != "" {
		raw = strings.TrimPrefix(raw+"&"+query, "&")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"?"+raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET stream: %v", err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// authCount is eventstream_bridge_auth_total{result,reason} as the bridge's registry has it.
func (b *bridge) authCount(t *testing.T, result, reason string) float64 {
	t.Helper()
	families, err := b.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != "eventstream_bridge_auth_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == result && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestAuthMatrixThroughTheBridge drives the real bridge (consumer on the real broker, hub, SSE
// handler) with one token per attack or mistake, checking the exact status, that the body is no
// event stream and leaks no event, and that each decision is counted with its reason.
func TestAuthMatrixThroughTheBridge(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	iss := newIssuer(t)
	authCfg := auth.Config{
		Mode: auth.ModeJWT, JWKSURL: iss.server.URL, Algorithms: []string{"RS256"},
		Audience: []string{"eventstream"}, Issuer: "https://issuer.test",
		JWKSMinRefreshGap: time.Hour, Leeway: 5 * time.Second, QueryParameter: "access_token",
		TenantsClaim: "teams", RequiredScope: "events:read",
	}
	b := startBridge(t, node, authCfg)

	// Events of both tenants are flowing while every refused request is made.
	b.publish(t, tenantB, "before-B")
	b.publish(t, tenantA, "before-A")

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&iss.key.PublicKey)
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	valid := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", nil)
	parts := strings.Split(valid, ".")
	forged := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["teams"] = []any{tenantA, tenantB} })
	tampered := parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"key-1"}`))
	algNone := noneHeader + "." + strings.Split(forged, ".")[1] + "."

	tests := []struct {
		name   string
		token  string
		query  string
		status int
		reason string
	}{
		{"tenant A asks for tenant B", valid, "team_id=" + tenantB, 403, auth.ReasonTenantForbidden},
		{"tenant A asks for A and B", valid, "team_id=" + tenantA + "&team_id=" + tenantB, 403, auth.ReasonTenantForbidden},
		{"no token", "", "", 401, auth.ReasonMissingToken},
		{"expired", iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "", 401, auth.ReasonTokenExpired},
		{"not yet valid", iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "", 401, auth.ReasonTokenNotYetValid},
		{"wrong audience", iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["aud"] = "another-api" }), "", 401, auth.ReasonBadAudience},
		{"wrong issuer", iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), "", 401, auth.ReasonBadIssuer},
		{"missing scope", iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["scope"] = "events:write" }), "", 403, auth.ReasonMissingScope},
		{"alg none", algNone, "", 401, auth.ReasonAlgorithmNotAllowed},
		{"HS256 signed with the RSA public key", iss.sign(t, jwt.SigningMethodHS256, publicPEM, "key-1", nil), "", 401, auth.ReasonAlgorithmNotAllowed},
		{"tampered claims", tampered, "", 401, auth.ReasonBadSignature},
		{"signed by another key", iss.sign(t, jwt.SigningMethodRS256, otherKey, "key-1", nil), "", 401, auth.ReasonBadSignature},
		{"unknown kid", iss.sign(t, jwt.SigningMethodRS256, otherKey, "key-2", nil), "", 401, auth.ReasonUnknownKID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			before := b.authCount(t, map[int]string{401: auth.ResultUnauthorized, 403: auth.ResultForbidden}[tc.status], tc.reason)
			resp := b.open(t, ctx, tc.token, tc.query)
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || strings.Contains(string(body), "data:") ||
				strings.Contains(string(body), "marker") {
				t.Fatalf("refused response looks like a stream or leaks an event: %q %q", resp.Header.Get("Content-Type"), body)
			}
			if tc.token != "" && strings.Contains(string(body), tc.token) {
				t.Fatal("the response echoes the token")
			}
			after := b.authCount(t, map[int]string{401: auth.ResultUnauthorized, 403: auth.ResultForbidden}[tc.status], tc.reason)
			if after != before+1 {
				t.Fatalf("auth_total{reason=%q} went from %v to %v, want +1", tc.reason, before, after)
			}
		})
	}

	for _, query := range []string{"", "team_id=" + tenantA} {
		t.Run("tenant A reads only A (query "+query+")", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp := b.open(t, ctx, valid, query)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			// The handler subscribed before it sent the headers, so everything published now
			// reaches the subscription in broker order: if B's events leaked, B2 would arrive
			// before A2.
			marker := events.NewID()[:8]
			for _, m := range []struct{ tenant, name string }{{tenantB, "B1"}, {tenantA, "A1"}, {tenantB, "B2"}, {tenantA, "A2"}} {
				b.publish(t, m.tenant, marker+m.name)
			}
			decoder := sse.NewDecoder(resp.Body, 0)
			var got []string
			for {
				msg, err := decoder.Next()
				if err != nil {
					t.Fatalf("stream ended (%v) after %q, before A2", err, got)
				}
				if strings.Contains(msg.Data, `"tenant":"`+tenantB+`"`) {
					t.Fatalf("tenant A received tenant B's event %q", msg.Data)
				}
				got = append(got, msg.Data)
				if strings.Contains(msg.Data, marker+"A2") {
					break
				}
			}
			if !strings.Contains(strings.Join(got, "\n"), marker+"A1") {
				t.Fatalf("A1 missing from %q", got)
			}
		})
	}
	if n := b.authCount(t, auth.ResultAllowed, "ok"); n != 2 {
		t.Fatalf("auth_total{result=allowed} = %v, want 2", n)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, "stream refused") {
		t.Fatalf("the debug log has no refusals; is the log captured? %q", logs)
	}
	for _, tc := range tests {
		if tc.token == "" {
			continue
		}
		// Any third of a token would do to replay parts of it; its signature most of all.
		parts := strings.Split(tc.token, ".")
		if signature := parts[len(parts)-1]; (signature != "" && strings.Contains(logs, signature)) || strings.Contains(logs, tc.token) {
			t.Fatalf("the bridge logged the token of case %q", tc.name)
		}
	}
	if strings.Contains(logs, "access_token") {
		t.Fatal("the bridge logged a URL with its access_token parameter")
	}
}

// TestAuthJWKSDownThroughTheBridge starts a bridge whose JWKS endpoint is down: every token is
// refused with 401 jwks_unavailable, and nothing is streamed.
func TestAuthJWKSDownThroughTheBridge(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	iss := newIssuer(t)
	iss.down.Store(true)
	b := startBridge(t, node, auth.Config{
		Mode: auth.ModeJWT, JWKSURL: iss.server.URL, JWKSMinRefreshGap: time.Hour, QueryParameter: "access_token",
	})
	b.publish(t, tenantA, "while-down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	token := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", nil)
	for range 3 {
		resp := b.open(t, ctx, token, "")
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), "marker") {
			t.Fatalf("status %d body %q, want 401 without events", resp.StatusCode, body)
		}
	}
	if n := b.authCount(t, auth.ResultUnauthorized, auth.ReasonJWKSUnavailable); n != 3 {
		t.Fatalf("auth_total{reason=jwks_unavailable} = %v, want 3", n)
	}
}

// TestStreamEndsAtTokenExpiry checks that a stream opened with a token about to expire ends
// at expiry with a retry: hint, so the client reconnects with a fresh token.
func TestStreamEndsAtTokenExpiry(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	iss := newIssuer(t)
	b := startBridge(t, node, auth.Config{Mode: auth.ModeJWT, JWKSURL: iss.server.URL, QueryParameter: "access_token"})
	token := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) {
		delete(c, "aud")
		c["exp"] = time.Now().Add(2 * time.Second).Unix()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	resp := b.open(t, ctx, token, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	decoder := sse.NewDecoder(resp.Body, 0)
	for {
		if _, err := decoder.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream failed: %v", err)
			}
			break
		}
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("stream ended after %v, want at the token's expiry (~2s)", elapsed)
	}
	if decoder.Retry() <= 0 {
		t.Fatal("stream ended without a retry: hint")
	}
	// Reconnecting with the same, now expired, token is refused.
	again := b.open(t, ctx, token, "")
	if again.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reconnect with the expired token: %d, want 401", again.StatusCode)
	}
}
