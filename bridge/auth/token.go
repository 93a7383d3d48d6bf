package auth

import (
	"net/http"
	"net/url"
	"strings"
)

// tokenFrom returns the request's token: from the Authorization header (Bearer scheme), else
// from the configured cookie, else from the configured query parameter. An Authorization header
// that is present but not a Bearer token is an error rather than a reason to look elsewhere.
func tokenFrom(r *http.Request, cookie, queryParameter string) (string, *Error) {
	if header := r.Header.Get("Authorization"); header != "" {
		scheme, token, ok := strings.Cut(header, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", unauthorized(ReasonMalformedToken, "the Authorization header must be \"Bearer <token>\"")
		}
		return token, nil
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil && c.Value != "" {
			return c.Value, nil
		}
	}
	if queryParameter != "" {
		if token := r.URL.Query().Get(queryParameter); token != "" {
			return token, nil
		}
	}
	return "", unauthorized(ReasonMissingToken, "a bearer token is required")
}

// RedactedURL returns u as a string with the value of the query parameter carrying tokens
// (DefaultQueryParameter when parameter is empty) replaced, for request logs: tokens must never
// reach a log.
func RedactedURL(u *url.URL, parameter string) string {
	if parameter == "" {
		parameter = DefaultQueryParameter
	}
	query := u.Query()
	if _, ok := query[parameter]; !ok {
		return u.String()
	}
	query.Set(parameter, "REDACTED")
	redacted := *u
	redacted.RawQuery = query.Encode()
	return redacted.String()
}
