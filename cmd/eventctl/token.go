package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/internal/cli"
)

// maxSecretFileBytes bounds what --secret-file reads: a secret is a few dozen bytes.
const maxSecretFileBytes = 64 << 10

// reservedClaims cannot be the tenants claim: the token sets them itself, or the bridge reads
// the scope from them.
var reservedClaims = []string{"sub", "iss", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "scopes"}

// listFlag collects a repeatable flag whose values may also be comma-separated lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return errors.New("empty value in list")
		}
		if !slices.Contains(*l, item) {
			*l = append(*l, item)
		}
	}
	return nil
}

type tokenFlags struct {
	secretFile   string
	teams        listFlag
	tenantsClaim string
	subject      string
	scope        string
	audience     listFlag
	issuer       string
	ttl          time.Duration
}

// runToken mints an HS256 JWT that a bridge in JWT mode with the same secret accepts, and
// prints only the token and a newline on stdout, so that it can be captured with $(…).
// Every problem with the flags or the secret is a usage error: nothing is printed on stdout.
func runToken(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("eventctl token", flag.ContinueOnError)
	var f tokenFlags
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the bridge's HS256 secret as stored in the Secret (raw bytes, not base64); - reads stdin; with several lines (a rotation) the first is used")
	fs.Var(&f.teams, "team", "tenant the token grants (repeatable, or a comma-separated list)")
	fs.StringVar(&f.tenantsClaim, "tenants-claim", auth.DefaultTenantsClaim, "claim listing the tenants (the stream's bridge.auth.jwt.tenantsClaim)")
	fs.StringVar(&f.subject, "sub", "eventctl", "subject (sub claim): who the token is for")
	fs.StringVar(&f.scope, "scope", auth.DefaultRequiredScope, "scope claim, space-separated scopes (the stream's bridge.auth.jwt.requiredScope)")
	fs.Var(&f.audience, "audience", "audience (aud claim; repeatable or comma-separated), when the stream sets bridge.auth.jwt.audience")
	fs.StringVar(&f.issuer, "issuer", "", "issuer (iss claim), when the stream sets bridge.auth.jwt.issuer")
	fs.DurationVar(&f.ttl, "ttl", time.Hour, "lifetime: the token expires (exp) this long after now")
	fs.Usage = usageFunc(fs, "eventctl token --secret-file PATH|- --team ID [--team ID…] [flags]")
	if err := cli.Parse(fs, args, stdout, false); err != nil {
		return err
	}
	if err := cli.NoArgs(fs); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return cli.Usage(err)
	}
	secret, err := readSecret(f.secretFile, stdin)
	if err != nil {
		return cli.Usage(err)
	}
	token, err := mintToken(f, secret, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// check names every problem with the flags.
func (f tokenFlags) check() error {
	var errs []error
	if f.secretFile == "" {
		errs = append(errs, errors.New("--secret-file is required (a file with the bridge's HS256 secret, or - for stdin)"))
	}
	if len(f.teams) == 0 {
		errs = append(errs, errors.New("--team is required (the tenants the token grants)"))
	}
	for _, team := range f.teams {
		if err := events.ValidSegmentValue(team); err != nil {
			errs = append(errs, fmt.Errorf("--team: %w", err))
		}
	}
	switch {
	case strings.TrimSpace(f.tenantsClaim) == "":
		errs = append(errs, errors.New("--tenants-claim must not be empty"))
	case slices.Contains(reservedClaims, f.tenantsClaim):
		errs = append(errs, fmt.Errorf("--tenants-claim %q is a registered or scope claim", f.tenantsClaim))
	}
	if strings.TrimSpace(f.subject) == "" {
		errs = append(errs, errors.New("--sub must not be empty"))
	}
	if f.ttl <= 0 {
		errs = append(errs, fmt.Errorf("--ttl %v must be positive (every token expires)", f.ttl))
	}
	return errors.Join(errs...)
}

// readSecret reads the HS256 secret from path ("-": r) the way the bridge reads its secret,
// and returns the first one. Errors never contain the secret.
func readSecret(path string, r io.Reader) ([]byte, error) {
	source := fmt.Sprintf("--secret-file %q", path)
	if path == "-" {
		source = "--secret-file - (stdin)"
	} else {
		file, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read secret: %w", err)
		}
		defer file.Close()
		r = file
	}
	content, err := io.ReadAll(io.LimitReader(r, maxSecretFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read secret from %s: %w", source, err)
	}
	if len(content) > maxSecretFileBytes {
		return nil, fmt.Errorf("secret in %s: larger than %d bytes", source, maxSecretFileBytes)
	}
	secrets, err := auth.ParseHS256Secrets(string(content))
	if err != nil {
		return nil, fmt.Errorf("HS256 secret in %s: %w", source, err)
	}
	return secrets[0], nil
}

// mintToken signs the claims of f with secret; the token is issued at now.
func mintToken(f tokenFlags, secret []byte, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"sub":          f.subject,
		"iat":          jwt.NewNumericDate(now),
		"exp":          jwt.NewNumericDate(now.Add(f.ttl)),
		f.tenantsClaim: []string(f.teams),
	}
	if f.scope != "" {
		claims["scope"] = f.scope
	}
	if len(f.audience) > 0 {
		claims["aud"] = []string(f.audience)
	}
	if f.issuer != "" {
		claims["iss"] = f.issuer
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	if len(token) > auth.MaxTokenBytes {
		return "", cli.Usagef("the token is %d bytes, more than the %d a bridge accepts: grant fewer tenants", len(token), auth.MaxTokenBytes)
	}
	return token, nil
}
