package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRegisterFlags(t *testing.T) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	var cfg Config
	RegisterFlags(fs, &cfg)
	if cfg.Mode != ModeJWT || cfg.TenantsClaim != "teams" || cfg.RequiredScope != "events:read" ||
		cfg.Leeway != 30*time.Second || cfg.QueryParameter != "access_token" || cfg.Cookie != "" {
		t.Fatalf("defaults = %+v", cfg)
	}
	err := fs.Parse([]string{
		"--auth-mode=jwt", "--auth-jwks-url=https://issuer.test/jwks.json", "--auth-algorithms=RS256, ES256",
		"--auth-audience=bridge,web", "--auth-issuer=https://issuer.test", "--auth-tenants-claim=orgs",
		"--auth-required-scope=", "--auth-cookie=jwt", "--auth-leeway=5s", "--auth-query-token=false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Algorithms, []string{"RS256", "ES256"}) || !slices.Equal(cfg.Audience, []string{"bridge", "web"}) ||
		cfg.TenantsClaim != "orgs" || cfg.RequiredScope != "" || cfg.Cookie != "jwt" || cfg.Leeway != 5*time.Second || cfg.QueryParameter != "" {
		t.Fatalf("parsed = %+v", cfg)
	}
}

func TestConfigRejectsUnsafeOrAmbiguousSetups(t *testing.T) {
	t.Setenv("TEST_SHORT_SECRET", "short")
	t.Setenv("TEST_SECRET", testSecret)
	testKeys(t)
	privateDER, err := x509.MarshalPKCS8PrivateKey(rsaKeyA)
	if err != nil {
		t.Fatal(err)
	}
	privatePEM := writeFile(t, "private.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privateDER}))
	secretFile := writeFile(t, "secret", []byte(testSecret+"\n"))

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown mode", Config{Mode: "basic"}, `auth mode "basic"`},
		{"jwt without keys", Config{Mode: ModeJWT}, "exactly one key source"},
		{"two key sources", Config{HS256SecretEnv: "TEST_SECRET", JWKSURL: "https://issuer.test/jwks"}, "exactly one key source"},
		{"RS256 with a secret", Config{HS256SecretEnv: "TEST_SECRET", Algorithms: []string{"RS256"}}, "cannot be used with a HMAC secret"},
		{"HS256 with JWKS", Config{JWKSURL: "https://issuer.test/jwks", Algorithms: []string{"HS256", "RS256"}}, "cannot be used with a public-key"},
		{"alg none", Config{PublicKeyFile: privatePEM, Algorithms: []string{"none"}}, `"none" cannot be used`},
		{"short secret", Config{HS256SecretEnv: "TEST_SHORT_SECRET"}, "shorter than 32 bytes"},
		{"unset secret env", Config{HS256SecretEnv: "TEST_NOT_SET_ANYWHERE"}, "is not set"},
		{"private key file", Config{PublicKeyFile: privatePEM}, "holds a private key"},
		{"JWKS URL not http", Config{JWKSURL: "file:///etc/keys"}, "absolute http or https URL"},
		{"negative leeway", Config{HS256SecretFile: secretFile, Leeway: -time.Second}, "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), tc.cfg, discardLogger())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestRedactedURL(t *testing.T) {
	u, _ := url.Parse("/api/v1/events?team_id=42&access_token=eyJsecret")
	got := RedactedURL(u, "")
	if strings.Contains(got, "eyJsecret") || !strings.Contains(got, "team_id=42") {
		t.Fatalf("RedactedURL = %q", got)
	}
	plain, _ := url.Parse("/api/v1/events?team_id=42")
	if RedactedURL(plain, "") != "/api/v1/events?team_id=42" {
		t.Fatalf("RedactedURL changed a URL without a token: %q", RedactedURL(plain, ""))
	}
}
