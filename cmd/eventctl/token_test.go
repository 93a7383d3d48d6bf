package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// bridgeAuthenticator builds the bridge's own verifier from the arguments and environment the
// operator gives a bridge pod for an HS256 secretRef (controllers/workload_build.go): the
// Secret's key in an environment variable, named by --auth-hs256-secret-env.
func bridgeAuthenticator(t *testing.T, secret string, extraArgs ...string) auth.Authenticator {
	t.Helper()
	const env = "BRIDGE_AUTH_HS256_SECRETS"
	t.Setenv(env, secret)
	var cfg auth.Config
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	auth.RegisterFlags(fs, &cfg)
	args := append([]string{"--auth-mode=jwt", "--auth-hs256-secret-env=" + env,
		"--auth-tenants-claim=teams", "--auth-required-scope=events:read"}, extraArgs...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, err := auth.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var jwtShape = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$`)

// TestTokenIsAcceptedByTheBridge mints tokens with the built eventctl and has the bridge's
// verifier, configured as the operator configures it, accept them with the requested tenants,
// subject and expiry; a bridge with another secret, audience or scope refuses them.
func TestTokenIsAcceptedByTheBridge(t *testing.T) {
	bin, _ := eventctlBinary(t)
	// As `kubectl get secret -o jsonpath='{.data.secret}' | base64 -d` prints it: raw bytes; a
	// file written by an editor ends with a newline, which the bridge ignores too.
	secret := "0123456789abcdef0123456789abcdef-eventctl"
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		bridgeArgs []string
		subject    string
		tenants    []string
		ttl        time.Duration
	}{{
		name:    "defaults",
		args:    []string{"token", "--secret-file", secretFile, "--team", "42,7", "--team", "9"},
		subject: "eventctl", tenants: []string{"42", "7", "9"}, ttl: time.Hour,
	}, {
		name: "stdin and every claim",
		args: []string{"token", "--secret-file", "-", "--team", "42", "--tenants-claim", "orgs", "--sub", "alice",
			"--scope", "profile events:read", "--audience", "eventstream", "--issuer", "https://issuer.example", "--ttl", "10m"},
		stdin:      secret,
		bridgeArgs: []string{"--auth-tenants-claim=orgs", "--auth-audience=eventstream", "--auth-issuer=https://issuer.example"},
		subject:    "alice", tenants: []string{"42"}, ttl: 10 * time.Minute,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			r := clitest.Run(t, bin, nil, tt.stdin, tt.args...)
			if r.ExitCode != 0 || r.Stderr != "" || !jwtShape.MatchString(r.Stdout) {
				t.Fatalf("want only a token on stdout\n%s", r)
			}
			token := strings.TrimSuffix(r.Stdout, "\n")

			p, err := bridgeAuthenticator(t, secret, tt.bridgeArgs...).Authenticate(bearer(token))
			if err != nil {
				t.Fatalf("the bridge refused the token: %v", err)
			}
			if p.Subject != tt.subject || !slices.Equal(p.Tenants, tt.tenants) {
				t.Fatalf("principal %+v, want subject %q and tenants %v", p, tt.subject, tt.tenants)
			}
			// Principal.ExpiresAt is exp plus the bridge's leeway; exp has whole seconds.
			exp := p.ExpiresAt.Add(-auth.DefaultLeeway)
			if exp.Before(before.Add(tt.ttl).Truncate(time.Second)) || exp.After(time.Now().Add(tt.ttl)) {
				t.Fatalf("exp %v, want %v after the run (%v)", exp, tt.ttl, before)
			}

			refusals := map[string]auth.Authenticator{
				"another secret": bridgeAuthenticator(t, strings.Repeat("x", 32), tt.bridgeArgs...),
				"another scope":  bridgeAuthenticator(t, secret, slices.Concat(tt.bridgeArgs, []string{"--auth-required-scope=events:admin"})...),
				"another issuer": bridgeAuthenticator(t, secret, slices.Concat(tt.bridgeArgs, []string{"--auth-issuer=https://other.example"})...),
				"an audience":    bridgeAuthenticator(t, secret, slices.Concat(tt.bridgeArgs, []string{"--auth-audience=other"})...),
			}
			for name, a := range refusals {
				if _, err := a.Authenticate(bearer(token)); err == nil {
					t.Errorf("a bridge with %s accepted the token", name)
				}
			}
		})
	}
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/events", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
