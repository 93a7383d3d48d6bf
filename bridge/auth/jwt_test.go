package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newAuthenticator(t *testing.T, cfg Config) Authenticator {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, err := New(ctx, cfg, discardLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func requestWithBearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// wantError asserts that err is an *Error with the given status and reason, and that its message
// does not echo the token.
func wantError(t *testing.T, err error, token string, status int, reason string) {
	t.Helper()
	var authErr *Error
	if !errors.As(err, &authErr) {
		t.Fatalf("error = %v, want *auth.Error %d %s", err, status, reason)
	}
	if authErr.Status != status || authErr.Reason != reason {
		t.Fatalf("error = %d %s (%s), want %d %s", authErr.Status, authErr.Reason, authErr.Message, status, reason)
	}
	if token != "" && strings.Contains(authErr.Message, token) {
		t.Fatalf("message %q contains the token", authErr.Message)
	}
	if !knownReasons[authErr.Reason] {
		t.Fatalf("reason %q is not in the bounded set", authErr.Reason)
	}
}

func with(claims jwt.MapClaims, change func(jwt.MapClaims)) jwt.MapClaims {
	change(claims)
	return claims
}

func TestHS256Matrix(t *testing.T) {
	testKeys(t)
	t.Setenv("TEST_AUTH_SECRET", testSecret)
	a := newAuthenticator(t, Config{
		Mode: ModeJWT, HS256SecretEnv: "TEST_AUTH_SECRET",
		Audience: []string{"bridge"}, Issuer: "https://issuer.test",
		TenantsClaim: "teams", RequiredScope: "events:read", Leeway: 30 * time.Second,
	})
	secret := []byte(testSecret)
	good := func() jwt.MapClaims {
		return with(validClaims(), func(c jwt.MapClaims) { c["aud"] = "bridge"; c["iss"] = "https://issuer.test" })
	}
	hour := time.Hour

	valid := sign(t, jwt.SigningMethodHS256, secret, "", good())
	tampered := func() string {
		parts := strings.Split(valid, ".")
		other := sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["teams"] = []any{"99"} }))
		return parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
	}()

	tests := []struct {
		name   string
		token  string
		status int
		reason string
	}{
		{"missing", "", 401, ReasonMissingToken},
		{"garbage", "not-a-jwt", 401, ReasonMalformedToken},
		{"oversize", strings.Repeat("a", MaxTokenBytes+1), 401, ReasonMalformedToken},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), 401, ReasonTokenExpired},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() })), 401, ReasonTokenNotYetValid},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { delete(c, "exp") })), 401, ReasonMissingExpiry},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["aud"] = "someone-else" })), 401, ReasonBadAudience},
		{"no audience", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { delete(c, "aud") })), 401, ReasonBadAudience},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), 401, ReasonBadIssuer},
		{"no issuer", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { delete(c, "iss") })), 401, ReasonBadIssuer},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), "", good()), 401, ReasonBadSignature},
		{"tampered payload", tampered, 401, ReasonBadSignature},
		{"alg none", unsignedToken(t, map[string]any{"alg": "none", "typ": "JWT"}, good()), 401, ReasonAlgorithmNotAllowed},
		{"alg None", unsignedToken(t, map[string]any{"alg": "None", "typ": "JWT"}, good()), 401, ReasonAlgorithmNotAllowed},
		{"HS512 not configured", sign(t, jwt.SigningMethodHS512, secret, "", good()), 401, ReasonAlgorithmNotAllowed},
		{"RS256 against a secret", sign(t, jwt.SigningMethodRS256, rsaKeyA, "", good()), 401, ReasonAlgorithmNotAllowed},
		{"missing scope", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["scope"] = "openid events:write" })), 403, ReasonMissingScope},
		{"scope of wrong type", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["scope"] = 7 })), 401, ReasonInvalidClaims},
		{"no tenants claim", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { delete(c, "teams") })), 403, ReasonNoTenants},
		{"empty tenants", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["teams"] = []any{} })), 403, ReasonNoTenants},
		{"tenants of wrong type", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["teams"] = map[string]any{"42": true} })), 401, ReasonInvalidClaims},
		{"fractional tenant", sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["teams"] = []any{4.5} })), 401, ReasonInvalidClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(requestWithBearer(tc.token))
			wantError(t, err, tc.token, tc.status, tc.reason)
		})
	}

	t.Run("valid", func(t *testing.T) {
		p, err := a.Authenticate(requestWithBearer(valid))
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if p.Subject != "user-1" || p.AllTenants || !slices.Equal(p.Tenants, []string{"42", "43"}) {
			t.Fatalf("principal = %+v", p)
		}
		if d := time.Until(p.ExpiresAt); d < hour || d > hour+30*time.Second {
			t.Fatalf("ExpiresAt in %v, want exp (an hour) plus the 30s leeway", d)
		}
		if !p.MayRead("43") || p.MayRead("44") {
			t.Fatalf("MayRead wrong for %+v", p)
		}
	})
	t.Run("expired within leeway", func(t *testing.T) {
		token := sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }))
		p, err := a.Authenticate(requestWithBearer(token))
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		// The stream may last until the token would be refused, not beyond.
		if d := time.Until(p.ExpiresAt); d <= 0 || d > 21*time.Second {
			t.Fatalf("ExpiresAt in %v, want the rest of the leeway (about 20s)", d)
		}
	})
	t.Run("audience in list", func(t *testing.T) {
		token := sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) { c["aud"] = []any{"other", "bridge"} }))
		if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	})
	t.Run("scope in scp or scopes arrays", func(t *testing.T) {
		for _, claim := range []string{"scp", "scopes"} {
			token := sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(c jwt.MapClaims) {
				delete(c, "scope")
				c[claim] = []any{"openid", "events:read"}
			}))
			if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
				t.Fatalf("%s: Authenticate: %v", claim, err)
			}
		}
	})
	t.Run("tenants as space-separated string and numbers", func(t *testing.T) {
		cases := []struct {
			claim any
			want  []string
		}{
			{"7 8 7", []string{"7", "8"}},
			{[]any{9007199254740993, "x"}, []string{"9007199254740993", "x"}},
		}
		for _, c := range cases {
			token := sign(t, jwt.SigningMethodHS256, secret, "", with(good(), func(m jwt.MapClaims) { m["teams"] = c.claim }))
			p, err := a.Authenticate(requestWithBearer(token))
			if err != nil {
				t.Fatalf("%v: Authenticate: %v", c.claim, err)
			}
			if !slices.Equal(p.Tenants, c.want) {
				t.Fatalf("%v: tenants = %q, want %q", c.claim, p.Tenants, c.want)
			}
		}
	})
}

func TestTokenSources(t *testing.T) {
	t.Setenv("TEST_AUTH_SECRET", testSecret)
	a := newAuthenticator(t, Config{Mode: ModeJWT, HS256SecretEnv: "TEST_AUTH_SECRET", Cookie: "session_jwt", QueryParameter: "access_token"})
	token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", validClaims())

	fromQuery := httptest.NewRequest(http.MethodGet, "/api/v1/events?team_id=42&access_token="+token, nil)
	if _, err := a.Authenticate(fromQuery); err != nil {
		t.Fatalf("query token: %v", err)
	}
	fromCookie := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	fromCookie.AddCookie(&http.Cookie{Name: "session_jwt", Value: token})
	if _, err := a.Authenticate(fromCookie); err != nil {
		t.Fatalf("cookie token: %v", err)
	}
	lowerScheme := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	lowerScheme.Header.Set("Authorization", "bearer "+token)
	if _, err := a.Authenticate(lowerScheme); err != nil {
		t.Fatalf("lower-case bearer: %v", err)
	}
	basic := httptest.NewRequest(http.MethodGet, "/api/v1/events?access_token="+token, nil)
	basic.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	_, err := a.Authenticate(basic)
	wantError(t, err, token, 401, ReasonMalformedToken)

	otherCookie := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	otherCookie.AddCookie(&http.Cookie{Name: "other", Value: token})
	_, err = a.Authenticate(otherCookie)
	wantError(t, err, token, 401, ReasonMissingToken)

	noQuery := newAuthenticator(t, Config{Mode: ModeJWT, HS256SecretEnv: "TEST_AUTH_SECRET"})
	_, err = noQuery.Authenticate(fromQuery)
	wantError(t, err, token, 401, ReasonMissingToken)
}

func TestPublicKeyFileRejectsAlgorithmConfusion(t *testing.T) {
	testKeys(t)
	pemBytes := append(publicKeyPEM(t, &rsaKeyA.PublicKey), publicKeyPEM(t, &ecKeyA.PublicKey)...)
	a := newAuthenticator(t, Config{Mode: ModeJWT, PublicKeyFile: writeFile(t, "keys.pem", pemBytes)})

	for _, token := range []string{
		sign(t, jwt.SigningMethodRS256, rsaKeyA, "", validClaims()),
		sign(t, jwt.SigningMethodES256, ecKeyA, "", validClaims()),
	} {
		if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	}
	// The classic confusion attack: the RSA public key (PEM text, known to everyone) used as an
	// HMAC secret, hoping the server verifies HS256 with "its key".
	confused := sign(t, jwt.SigningMethodHS256, publicKeyPEM(t, &rsaKeyA.PublicKey), "", validClaims())
	_, err := a.Authenticate(requestWithBearer(confused))
	wantError(t, err, confused, 401, ReasonAlgorithmNotAllowed)

	otherKey := sign(t, jwt.SigningMethodRS256, rsaKeyB, "", validClaims())
	_, err = a.Authenticate(requestWithBearer(otherKey))
	wantError(t, err, otherKey, 401, ReasonBadSignature)

	none := unsignedToken(t, map[string]any{"alg": "none"}, validClaims())
	_, err = a.Authenticate(requestWithBearer(none))
	wantError(t, err, none, 401, ReasonAlgorithmNotAllowed)

	// Even when HS256 were somehow accepted, the RSA key is never handed to HMAC.
	if keyFitsMethod(&rsaKeyA.PublicKey, jwt.SigningMethodHS256) || keyFitsMethod([]byte("x"), jwt.SigningMethodRS256) {
		t.Fatal("keyFitsMethod lets a key cross algorithm families")
	}
}

func TestHS256RotationAcceptsEverySecretInTheFile(t *testing.T) {
	oldSecret, newSecret := strings.Repeat("o", 40), strings.Repeat("n", 40)
	path := writeFile(t, "secret", []byte(newSecret+"\n"+oldSecret+"\n"))
	a := newAuthenticator(t, Config{Mode: ModeJWT, HS256SecretFile: path})
	for _, secret := range []string{oldSecret, newSecret} {
		token := sign(t, jwt.SigningMethodHS256, []byte(secret), "", validClaims())
		if _, err := a.Authenticate(requestWithBearer(token)); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	}
	retired := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("r", 40)), "", validClaims())
	_, err := a.Authenticate(requestWithBearer(retired))
	wantError(t, err, retired, 401, ReasonBadSignature)
}

func TestNoneMode(t *testing.T) {
	a := newAuthenticator(t, Config{Mode: ModeNone})
	p, err := a.Authenticate(requestWithBearer(""))
	if err != nil || !p.AllTenants {
		t.Fatalf("Authenticate = %+v, %v; want all tenants", p, err)
	}
}

func TestAuthorize(t *testing.T) {
	p := Principal{Subject: "u", Tenants: []string{"42"}}
	if err := Authorize(p, "42"); err != nil {
		t.Fatalf("Authorize own tenant: %v", err)
	}
	wantError(t, Authorize(p, "43"), "", 403, ReasonTenantForbidden)
	if err := Authorize(Principal{AllTenants: true}, "43"); err != nil {
		t.Fatalf("Authorize with AllTenants: %v", err)
	}
}

// TestSubjectKey: the per-subject limit key is the token's sub; a token without sub is a
// subject of its own, keyed by a digest that never contains the token.
func TestSubjectKey(t *testing.T) {
	testKeys(t)
	t.Setenv("TEST_AUTH_SECRET", testSecret)
	a := newAuthenticator(t, Config{Mode: ModeJWT, HS256SecretEnv: "TEST_AUTH_SECRET", TenantsClaim: "teams", RequiredScope: "events:read"})
	secret := []byte(testSecret)
	key := func(claims jwt.MapClaims) (string, string) {
		t.Helper()
		token := sign(t, jwt.SigningMethodHS256, secret, "", claims)
		p, err := a.Authenticate(requestWithBearer(token))
		if err != nil {
			t.Fatal(err)
		}
		return p.SubjectKey, token
	}
	withSub, _ := key(validClaims())
	withSubAgain, _ := key(with(validClaims(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(2 * time.Hour).Unix() }))
	if withSub != "sub:user-1" || withSubAgain != withSub {
		t.Fatalf("keys of two tokens of sub user-1: %q, %q", withSub, withSubAgain)
	}
	noSub := func(c jwt.MapClaims) { delete(c, "sub") }
	first, token := key(with(validClaims(), noSub))
	p, _ := a.Authenticate(requestWithBearer(token))
	second, _ := key(with(validClaims(), func(c jwt.MapClaims) { noSub(c); c["iat"] = time.Now().Add(-time.Minute).Unix() }))
	if !strings.HasPrefix(first, "token:") || p.SubjectKey != first || second == first || strings.Contains(first, token) {
		t.Fatalf("keys of tokens without sub: %q (again %q), another token %q", first, p.SubjectKey, second)
	}
	if p.Subject != "unknown" {
		t.Fatalf("subject for logs %q", p.Subject)
	}
}
