package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// New builds the Authenticator cfg describes. In mode jwt it loads the keys; with a JWKS URL it
// fetches the set once (a failure is logged, not fatal: requests get 401 jwks_unavailable until
// a fetch succeeds) and starts a refresh goroutine that stops when ctx is done. Mode none is
// logged as a warning because it opens every tenant to every client.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (Authenticator, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Mode == ModeNone {
		logger.Warn("AUTH DISABLED (--auth-mode=none): every client can read every tenant's events; use only for development")
		return None(), nil
	}

	var keys keySource
	var source string
	switch {
	case cfg.JWKSURL != "":
		jwks, err := newJWKSKeys(cfg, logger)
		if err != nil {
			return nil, err
		}
		if err := jwks.fetch(ctx); err != nil {
			logger.Warn("auth JWKS: first fetch failed; tokens are refused until a fetch succeeds", "error", err)
		}
		go jwks.run(ctx)
		keys, source = jwks, "jwks"
	case cfg.PublicKeyFile != "":
		static, err := loadPublicKeys(cfg.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		keys, source = static, "public-key-file"
	default:
		static, err := loadHMACSecrets(cfg)
		if err != nil {
			return nil, err
		}
		keys, source = static, "hs256-secret"
	}
	logger.Info("auth: JWT required", "keys", source, "algorithms", cfg.Algorithms,
		"audience", cfg.Audience, "issuer", cfg.Issuer, "tenantsClaim", cfg.TenantsClaim,
		"requiredScope", cfg.RequiredScope)
	return newJWTAuthenticator(cfg, keys), nil
}

type jwtAuthenticator struct {
	cfg    Config
	keys   keySource
	parser *jwt.Parser
}

func newJWTAuthenticator(cfg Config, keys keySource) *jwtAuthenticator {
	options := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithJSONNumber(),
	}
	if len(cfg.Audience) > 0 {
		options = append(options, jwt.WithAudience(cfg.Audience...))
	}
	if cfg.Issuer != "" {
		options = append(options, jwt.WithIssuer(cfg.Issuer))
	}
	return &jwtAuthenticator{cfg: cfg, keys: keys, parser: jwt.NewParser(options...)}
}

// Authenticate verifies the request's token and returns the caller's tenants. Errors are *Error:
// 401 when the token is missing or not acceptable, 403 when it is valid but grants no right to
// stream (missing scope, no tenants).
func (a *jwtAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	raw, authErr := tokenFrom(r, a.cfg.Cookie, a.cfg.QueryParameter)
	if authErr != nil {
		return Principal{}, authErr
	}
	if len(raw) > MaxTokenBytes {
		return Principal{}, unauthorized(ReasonMalformedToken, "the token is too large")
	}
	claims := jwt.MapClaims{}
	token, err := a.parser.ParseWithClaims(raw, claims, func(token *jwt.Token) (any, error) {
		return a.keys.verificationKeys(r.Context(), token)
	})
	if err != nil {
		return Principal{}, a.classify(token, claims, err)
	}

	expiresAt, err := claims.GetExpirationTime()
	if err != nil || expiresAt == nil {
		return Principal{}, unauthorized(ReasonMissingExpiry, "the token has no valid exp claim")
	}
	subject, _ := claims.GetSubject()
	subjectKey := "sub:" + subject
	if subject == "" {
		subject, subjectKey = "unknown", tokenSubjectKey(raw)
	}
	if a.cfg.RequiredScope != "" {
		scopes, ok := scopesOf(claims)
		if !ok {
			return Principal{}, unauthorized(ReasonInvalidClaims, "the token's scope claim is not a string or a list of strings")
		}
		if !slices.Contains(scopes, a.cfg.RequiredScope) {
			return Principal{}, forbidden(ReasonMissingScope, fmt.Sprintf("the token lacks the scope %q", a.cfg.RequiredScope))
		}
	}
	tenants, ok := tenantsOf(claims[a.cfg.TenantsClaim])
	if !ok {
		return Principal{}, unauthorized(ReasonInvalidClaims, fmt.Sprintf("the token's %q claim is not a list of tenants", a.cfg.TenantsClaim))
	}
	if len(tenants) == 0 {
		return Principal{}, forbidden(ReasonNoTenants, fmt.Sprintf("the token grants no tenant (claim %q)", a.cfg.TenantsClaim))
	}
	// The stream ends when this bridge would stop accepting the token (exp plus the leeway), so
	// the reconnect after the end is refused instead of accepted again within the leeway, which
	// would make a reconnect loop.
	return Principal{Subject: subject, SubjectKey: subjectKey, Tenants: tenants, ExpiresAt: expiresAt.Add(a.cfg.Leeway)}, nil
}

// tokenSubjectKey is the per-subject limit key of a token without sub: a digest of the token,
// so one such token (leaked, or shared by a runaway page) is capped like one subject. The token
// itself is never kept.
func tokenSubjectKey(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return "token:" + hex.EncodeToString(sum[:16])
}

// classify maps a parse error to an *Error with a bounded reason. The algorithm is checked first
// so that "none" and algorithm confusion are reported as such whatever else is wrong.
func (a *jwtAuthenticator) classify(token *jwt.Token, claims jwt.MapClaims, err error) *Error {
	if errors.Is(err, jwt.ErrTokenMalformed) || token == nil {
		return unauthorized(ReasonMalformedToken, "the token is not a well-formed JWT")
	}
	if alg, _ := token.Header["alg"].(string); !slices.Contains(a.cfg.Algorithms, alg) {
		return unauthorized(ReasonAlgorithmNotAllowed, "the token's signing algorithm is not accepted")
	}
	switch {
	case errors.Is(err, errJWKSUnavailable):
		return unauthorized(ReasonJWKSUnavailable, "the signing keys are unavailable; try again later")
	case errors.Is(err, errUnknownKID):
		return unauthorized(ReasonUnknownKID, "the token's key id is unknown")
	case errors.Is(err, errKeyMismatch), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized(ReasonBadSignature, "the token's signature is invalid")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims["exp"] == nil:
		return unauthorized(ReasonMissingExpiry, "the token has no exp claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized(ReasonTokenExpired, "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized(ReasonTokenNotYetValid, "the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidAudience), len(a.cfg.Audience) > 0 && claims["aud"] == nil:
		return unauthorized(ReasonBadAudience, "the token is not meant for this audience")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), a.cfg.Issuer != "" && claims["iss"] == nil:
		return unauthorized(ReasonBadIssuer, "the token's issuer is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return unauthorized(ReasonInvalidClaims, "the token's claims are invalid")
	}
	return unauthorized(ReasonOther, "the token is invalid")
}

// tenantsOf reads a tenants claim: a JSON array of strings or integers, or a space-separated
// string. An absent claim is an empty list; any other shape is not ok. Duplicates are dropped.
func tenantsOf(claim any) ([]string, bool) {
	var tenants []string
	add := func(tenant string) {
		if tenant != "" && !slices.Contains(tenants, tenant) {
			tenants = append(tenants, tenant)
		}
	}
	switch value := claim.(type) {
	case nil:
	case string:
		for _, tenant := range strings.Fields(value) {
			add(tenant)
		}
	case []any:
		for _, item := range value {
			switch item := item.(type) {
			case string:
				add(item)
			case json.Number:
				if _, err := item.Int64(); err != nil {
					return nil, false
				}
				add(item.String())
			default:
				return nil, false
			}
		}
	default:
		return nil, false
	}
	return tenants, true
}

// scopesOf collects the scopes of the scope, scp and scopes claims, each a space-separated
// string or an array of strings.
func scopesOf(claims jwt.MapClaims) ([]string, bool) {
	var scopes []string
	for _, name := range []string{"scope", "scp", "scopes"} {
		switch value := claims[name].(type) {
		case nil:
		case string:
			scopes = append(scopes, strings.Fields(value)...)
		case []any:
			for _, item := range value {
				scope, ok := item.(string)
				if !ok {
					return nil, false
				}
				scopes = append(scopes, scope)
			}
		default:
			return nil, false
		}
	}
	return scopes, true
}
