package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuthenticate feeds hostile tokens to a JWT authenticator: whatever the input, the answer is
// a refusal with a status of 401 or 403, a reason from the bounded set, and a message that does
// not repeat the token. The seed corpus runs with every go test.
func FuzzAuthenticate(f *testing.F) {
	secret := []byte(testSecret)
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(strings.Repeat("w", 40)), "", validClaims()))
	f.Add(unsignedToken(f, map[string]any{"alg": "none"}, validClaims()))
	f.Add(unsignedToken(f, map[string]any{"alg": "HS256", "kid": strings.Repeat("k", 300)}, jwt.MapClaims{"exp": "soon"}))
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJ0ZWFtcyI6W3t9XX0.")
	f.Add("a.b.c")
	f.Add("....")
	f.Add(strings.Repeat("A", 100) + "." + strings.Repeat("B", 100) + ".")
	f.Add("\x00\xff.\n\r.")

	a := newJWTAuthenticator(mustDefaults(f, Config{Mode: ModeJWT, HS256SecretEnv: "unused"}), staticKeys{keys: []any{secret}})
	f.Fuzz(func(t *testing.T, token string) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		p, err := a.Authenticate(r)
		if err == nil {
			t.Fatalf("hostile token %q accepted as %+v", token, p)
		}
		var authErr *Error
		if !errors.As(err, &authErr) {
			t.Fatalf("error %T %v is not *auth.Error", err, err)
		}
		if (authErr.Status != 401 && authErr.Status != 403) || !knownReasons[authErr.Reason] {
			t.Fatalf("refusal %d %q outside the contract", authErr.Status, authErr.Reason)
		}
		if len(token) >= 16 && strings.Contains(authErr.Message, token) {
			t.Fatalf("message %q repeats the token", authErr.Message)
		}
	})
}

func mustDefaults(tb testing.TB, cfg Config) Config {
	tb.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}
