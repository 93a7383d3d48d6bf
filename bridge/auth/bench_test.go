package auth

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Cost of authenticating one stream request (paid once per connection, not per event).

func BenchmarkAuthenticateHS256(b *testing.B) {
	a := newJWTAuthenticator(mustDefaults(b, Config{Mode: ModeJWT, HS256SecretEnv: "unused"}), staticKeys{keys: []any{[]byte(testSecret)}})
	r := requestWithBearer(sign(b, jwt.SigningMethodHS256, []byte(testSecret), "", validClaims()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticateRS256FromJWKS(b *testing.B) {
	testKeys(b)
	server := newJWKSServer(b, jwkOf(&rsaKeyA.PublicKey, "k1", "RS256"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	authenticator, err := New(ctx, Config{Mode: ModeJWT, JWKSURL: server.URL}, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	r := requestWithBearer(sign(b, jwt.SigningMethodRS256, rsaKeyA, "k1", validClaims()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authenticator.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRefuseUnknownKID(b *testing.B) {
	testKeys(b)
	server := newJWKSServer(b, jwkOf(&rsaKeyA.PublicKey, "k1", "RS256"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	authenticator, err := New(ctx, Config{Mode: ModeJWT, JWKSURL: server.URL}, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	r := requestWithBearer(sign(b, jwt.SigningMethodRS256, rsaKeyB, "invented", validClaims()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authenticator.Authenticate(r); err == nil {
			b.Fatal("unknown kid accepted")
		}
	}
	b.ReportMetric(float64(server.fetches.Load()), "jwks-fetches")
}
