package auth

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Modes of Config.Mode.
const (
	// ModeNone lets every request read every tenant. For development only.
	ModeNone = "none"
	// ModeJWT requires a signed JWT on every request.
	ModeJWT = "jwt"
)

// Defaults of Config, applied by RegisterFlags and by New for zero values.
const (
	DefaultTenantsClaim        = contract.DefaultTenantsClaim
	DefaultRequiredScope       = contract.DefaultRequiredScope
	DefaultQueryParameter      = "access_token"
	DefaultLeeway              = 30 * time.Second
	DefaultJWKSRefreshInterval = 15 * time.Minute
	DefaultJWKSMinRefreshGap   = 30 * time.Second
	DefaultJWKSFetchTimeout    = 5 * time.Second
	DefaultJWKSMaxBytes        = 1 << 20
	// MaxTokenBytes bounds the token the bridge is willing to parse.
	MaxTokenBytes = 8 << 10
	// minHMACSecretBytes is the shortest HS256 secret accepted (RFC 7518 section 3.2: at least
	// the hash size).
	minHMACSecretBytes = 32
)

// Config configures an Authenticator. Exactly one key source (HS256 secret, JWKS URL or public
// key file) must be set in mode jwt.
type Config struct {
	// Mode is ModeNone or ModeJWT.
	Mode string
	// HS256SecretFile names a file holding HMAC secrets, one per line (several lines allow
	// rotation without downtime). Trailing whitespace of each line is ignored.
	HS256SecretFile string
	// HS256SecretEnv names an environment variable holding HMAC secrets, one per line.
	HS256SecretEnv string
	// JWKSURL is an http(s) URL of a JSON Web Key Set with the issuer's public keys.
	JWKSURL string
	// JWKSRefreshInterval is how often the key set is refetched in the background.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshGap is the least time between two fetches caused by unknown key ids, so that
	// tokens with made-up kids cannot make the bridge hammer the JWKS endpoint.
	JWKSMinRefreshGap time.Duration
	// JWKSFetchTimeout bounds one fetch of the key set.
	JWKSFetchTimeout time.Duration
	// JWKSMaxBytes bounds the size of the key set document.
	JWKSMaxBytes int64
	// PublicKeyFile names a PEM file with one or more RSA or ECDSA public keys or certificates.
	PublicKeyFile string
	// Algorithms are the accepted JWS algorithms, e.g. HS256 or RS256,ES256. Empty: HS256 for a
	// secret, RS256 and ES256 for public keys. HMAC and public-key algorithms cannot be mixed.
	Algorithms []string
	// Audience: when non-empty, the token's aud must contain one of these.
	Audience []string
	// Issuer: when non-empty, the token's iss must equal it.
	Issuer string
	// TenantsClaim is the claim listing the caller's tenants (array of strings or numbers, or a
	// space-separated string).
	TenantsClaim string
	// RequiredScope must appear in the token's scope, scp or scopes claim; empty: no scope check.
	RequiredScope string
	// Cookie names a cookie that may carry the token; empty: cookies are not read.
	Cookie string
	// QueryParameter names the query parameter that may carry the token (EventSource cannot send
	// headers); empty: the query is not read. The bridge's handler accepts only
	// DefaultQueryParameter among its query parameters, so the flags offer on/off only.
	QueryParameter string
	// Leeway is the clock skew tolerated for exp and nbf.
	Leeway time.Duration
}

// RegisterFlags adds the --auth-* flags to fs, storing into cfg, with the package defaults.
func RegisterFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Mode, contract.FlagAuthMode, contract.DefaultAuthMode, "authentication mode: jwt, or none (development only: every client reads every tenant)")
	fs.StringVar(&cfg.HS256SecretFile, "auth-hs256-secret-file", "", "file holding HS256 secrets, one per line (jwt mode)")
	fs.StringVar(&cfg.HS256SecretEnv, contract.FlagAuthHS256SecretEnv, "", "name of an environment variable holding HS256 secrets, one per line (jwt mode)")
	fs.StringVar(&cfg.JWKSURL, contract.FlagAuthJWKSURL, "", "URL of the issuer's JSON Web Key Set (jwt mode, RS256/ES256)")
	fs.DurationVar(&cfg.JWKSRefreshInterval, "auth-jwks-refresh-interval", DefaultJWKSRefreshInterval, "how often the JWKS is refetched in the background")
	fs.DurationVar(&cfg.JWKSMinRefreshGap, "auth-jwks-min-refresh-interval", DefaultJWKSMinRefreshGap, "least time between JWKS fetches triggered by unknown key ids")
	fs.DurationVar(&cfg.JWKSFetchTimeout, "auth-jwks-fetch-timeout", DefaultJWKSFetchTimeout, "time limit of one JWKS fetch")
	fs.Int64Var(&cfg.JWKSMaxBytes, "auth-jwks-max-bytes", DefaultJWKSMaxBytes, "largest JWKS document accepted")
	fs.StringVar(&cfg.PublicKeyFile, contract.FlagAuthPublicKeyFile, "", "PEM file with RSA/ECDSA public keys or certificates (jwt mode)")
	fs.Func(contract.FlagAuthAlgorithms, "comma-separated accepted JWS algorithms (default HS256 for a secret, RS256,ES256 for public keys)", func(v string) error {
		cfg.Algorithms = splitList(v)
		return nil
	})
	fs.Func(contract.FlagAuthAudience, "comma-separated audiences; when set, the token's aud must contain one", func(v string) error {
		cfg.Audience = splitList(v)
		return nil
	})
	fs.StringVar(&cfg.Issuer, contract.FlagAuthIssuer, "", "when set, the token's iss must equal it")
	fs.StringVar(&cfg.TenantsClaim, contract.FlagAuthTenantsClaim, DefaultTenantsClaim, "claim listing the caller's tenants")
	fs.StringVar(&cfg.RequiredScope, contract.FlagAuthRequiredScope, DefaultRequiredScope, "scope the token must carry (scope, scp or scopes claim); empty disables the check")
	fs.StringVar(&cfg.Cookie, contract.FlagAuthCookie, "", "name of a cookie that may carry the token; empty: cookies are ignored")
	cfg.QueryParameter = DefaultQueryParameter
	fs.BoolFunc("auth-query-token", "accept the token in the "+DefaultQueryParameter+" query parameter, which EventSource needs (default true; false: header or cookie only)", func(v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		cfg.QueryParameter = ""
		if on {
			cfg.QueryParameter = DefaultQueryParameter
		}
		return nil
	})
	fs.DurationVar(&cfg.Leeway, "auth-leeway", DefaultLeeway, "clock skew tolerated for exp and nbf")
}

func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

var (
	hmacAlgorithms      = map[string]bool{"HS256": true, "HS384": true, "HS512": true}
	publicKeyAlgorithms = map[string]bool{
		"RS256": true, "RS384": true, "RS512": true,
		"PS256": true, "PS384": true, "PS512": true,
		"ES256": true, "ES384": true, "ES512": true,
		"EdDSA": true,
	}
)

// withDefaults returns cfg with zero values replaced by defaults and validates it.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeJWT
	}
	switch cfg.Mode {
	case ModeNone:
		return cfg, nil
	case ModeJWT:
	default:
		return cfg, fmt.Errorf("auth mode %q: want %q or %q", cfg.Mode, ModeJWT, ModeNone)
	}
	if cfg.JWKSRefreshInterval <= 0 {
		cfg.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	if cfg.JWKSMinRefreshGap <= 0 {
		cfg.JWKSMinRefreshGap = DefaultJWKSMinRefreshGap
	}
	if cfg.JWKSFetchTimeout <= 0 {
		cfg.JWKSFetchTimeout = DefaultJWKSFetchTimeout
	}
	if cfg.JWKSMaxBytes <= 0 {
		cfg.JWKSMaxBytes = DefaultJWKSMaxBytes
	}
	if cfg.TenantsClaim == "" {
		cfg.TenantsClaim = DefaultTenantsClaim
	}
	if cfg.Leeway < 0 {
		return cfg, errors.New("auth leeway must not be negative")
	}

	sources := 0
	hmac := cfg.HS256SecretFile != "" || cfg.HS256SecretEnv != ""
	for _, set := range []bool{hmac, cfg.JWKSURL != "", cfg.PublicKeyFile != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return cfg, errors.New("auth mode jwt needs exactly one key source: --auth-hs256-secret-file or --auth-hs256-secret-env, --auth-jwks-url, or --auth-public-key-file (or --auth-mode=none for development)")
	}
	if len(cfg.Algorithms) == 0 {
		if hmac {
			cfg.Algorithms = []string{"HS256"}
		} else {
			cfg.Algorithms = []string{"RS256", "ES256"}
		}
	}
	allowed := publicKeyAlgorithms
	if hmac {
		allowed = hmacAlgorithms
	}
	for _, alg := range cfg.Algorithms {
		if !allowed[alg] {
			kind := "public-key"
			if hmac {
				kind = "HMAC secret"
			}
			return cfg, fmt.Errorf("auth algorithm %q cannot be used with a %s key source", alg, kind)
		}
	}
	return cfg, nil
}
