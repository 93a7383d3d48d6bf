package auth

import "net/http"

// Reasons are the bounded set of values of Error.Reason. They are used as metric label values, so
// the set must stay small and fixed: never build a reason from request or token contents.
const (
	// ReasonMissingToken: no token in the Authorization header, the cookie or the query.
	ReasonMissingToken = "missing_token"
	// ReasonMalformedToken: not a JWT (wrong segments, bad base64/JSON, oversize, bad header).
	ReasonMalformedToken = "malformed_token"
	// ReasonAlgorithmNotAllowed: the token's alg is not one of the configured algorithms
	// (this includes "none" and algorithm confusion such as HS256 against an RSA key).
	ReasonAlgorithmNotAllowed = "algorithm_not_allowed"
	// ReasonBadSignature: the signature does not verify with any configured key.
	ReasonBadSignature = "bad_signature"
	// ReasonUnknownKID: the token names a key id the JWKS does not hold (after a rate-limited refresh).
	ReasonUnknownKID = "unknown_kid"
	// ReasonJWKSUnavailable: no key set could be fetched from the JWKS URL yet.
	ReasonJWKSUnavailable = "jwks_unavailable"
	// ReasonTokenExpired: exp is in the past (beyond the leeway).
	ReasonTokenExpired = "token_expired"
	// ReasonTokenNotYetValid: nbf is in the future (beyond the leeway).
	ReasonTokenNotYetValid = "token_not_yet_valid"
	// ReasonMissingExpiry: the token has no exp claim; tokens without expiry are refused.
	ReasonMissingExpiry = "missing_exp"
	// ReasonBadAudience: aud does not contain a configured audience.
	ReasonBadAudience = "bad_audience"
	// ReasonBadIssuer: iss is not the configured issuer.
	ReasonBadIssuer = "bad_issuer"
	// ReasonInvalidClaims: a claim has the wrong type (e.g. the tenants claim is an object).
	ReasonInvalidClaims = "invalid_claims"
	// ReasonMissingScope: the token lacks the required scope (403).
	ReasonMissingScope = "missing_scope"
	// ReasonNoTenants: the token is valid but grants no tenant (403).
	ReasonNoTenants = "no_tenants"
	// ReasonTenantForbidden: the request asks for a tenant the token does not grant (403).
	ReasonTenantForbidden = "tenant_forbidden"
	// ReasonOther: any other failure; also what unknown reasons are counted as.
	ReasonOther = "other"
)

// knownReasons holds every reason a metric label may carry.
var knownReasons = map[string]bool{
	ReasonMissingToken: true, ReasonMalformedToken: true, ReasonAlgorithmNotAllowed: true,
	ReasonBadSignature: true, ReasonUnknownKID: true, ReasonJWKSUnavailable: true,
	ReasonTokenExpired: true, ReasonTokenNotYetValid: true, ReasonMissingExpiry: true,
	ReasonBadAudience: true, ReasonBadIssuer: true, ReasonInvalidClaims: true,
	ReasonMissingScope: true, ReasonNoTenants: true, ReasonTenantForbidden: true, ReasonOther: true,
}

func unauthorized(reason, message string) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: reason, Message: message}
}

func forbidden(reason, message string) *Error {
	return &Error{Status: http.StatusForbidden, Reason: reason, Message: message}
}

// Authorize decides whether p may read tenant, the tenant a request asked for (e.g. its team_id).
// It returns nil when allowed and a 403 *Error with ReasonTenantForbidden otherwise. A request
// that names no tenant must instead be limited to p's tenants by the caller.
func Authorize(p Principal, tenant string) error {
	if p.MayRead(tenant) {
		return nil
	}
	return TenantForbidden()
}

// TenantForbidden is the 403 for a request that asks for a tenant its credentials do not grant.
func TenantForbidden() *Error {
	return forbidden(ReasonTenantForbidden, "the token does not grant access to this tenant")
}
