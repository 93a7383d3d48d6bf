package main

import (
	"flag"
	"log/slog"

	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
)

// authFlags holds the authentication flags. This file is the one place to extend when auth
// modes are added: register flags in bindAuthFlags, build the Authenticator in
// newAuthenticator.
type authFlags struct{}

func bindAuthFlags(fs *flag.FlagSet, getenv func(string) string) *authFlags {
	return &authFlags{}
}

// newAuthenticator builds the request authenticator from the auth flags.
func newAuthenticator(_ *authFlags, log *slog.Logger) (auth.Authenticator, error) {
	log.Warn("AUTH MODE NONE: every client may read every tenant's events; use only for development")
	return auth.None(), nil
}
