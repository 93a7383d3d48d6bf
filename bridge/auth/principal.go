// Package auth decides who an SSE request comes from and which tenants it may read.
//
// The bridge's request path calls an Authenticator before it subscribes anything: on failure it
// answers with the *Error's status and message and streams nothing; on success the Principal
// bounds the subscription (which tenants) and its lifetime (ExpiresAt).
package auth

import (
	"net/http"
	"slices"
	"time"
)

// Principal is an authenticated caller.
type Principal struct {
	// Subject identifies the caller in logs (the token's sub); never a credential.
	Subject string
	// SubjectKey identifies the caller for the per-subject connection limit: "sub:" and the
	// token's sub, or for a token without sub "token:" and a digest of the token itself (each
	// such token is a subject of its own). Empty: no per-subject limit (auth mode none).
	SubjectKey string
	// AllTenants is true when the caller may read every tenant (auth mode none).
	AllTenants bool
	// Tenants the caller may read when AllTenants is false.
	Tenants []string
	// ExpiresAt is when the caller's credential expires and its stream must end; zero: never.
	ExpiresAt time.Time
}

// MayRead reports whether the caller may read events of tenant.
func (p Principal) MayRead(tenant string) bool {
	return p.AllTenants || slices.Contains(p.Tenants, tenant)
}

// Authenticator authenticates a request. Errors it returns are *Error.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Error is an authentication or authorization failure, safe to show to the client.
type Error struct {
	// Status is the HTTP status to answer with (401 or 403).
	Status int
	// Reason is a short, bounded identifier for metrics and logs, e.g. "token_expired".
	Reason string
	// Message is the response body: brief, never key material or the token.
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

// None returns the Authenticator of auth mode none: every request may read every tenant.
// It is meant for development; the bridge logs loudly when it is configured.
func None() Authenticator { return noneAuthenticator{} }

type noneAuthenticator struct{}

func (noneAuthenticator) Authenticate(*http.Request) (Principal, error) {
	return Principal{Subject: "anonymous", AllTenants: true}, nil
}
