package events

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ValidateAMQPURI checks that uri is an AMQP URI a connection can be made with:
// amqp://user:password@host:port/vhost or amqps://…. Its errors never contain the URI's user
// name or password, so they may be logged; they say what is wrong and how it should look.
func ValidateAMQPURI(uri string) error {
	const want = "want amqp://USER:PASSWORD@HOST:5672/VHOST or amqps://…"
	if uri == "" {
		return errors.New("is empty; " + want)
	}
	scheme, _, ok := strings.Cut(uri, "://")
	if !ok {
		return errors.New("has no scheme; " + want)
	}
	if scheme != "amqp" && scheme != "amqps" {
		if !validScheme(scheme) {
			return errors.New("has no valid scheme; " + want)
		}
		return fmt.Errorf("has scheme %q; %s", scheme, want)
	}
	if _, err := amqp.ParseURI(uri); err != nil {
		// url.Error repeats the whole URI, password included: say only what kind of problem it is.
		var urlErr *url.Error
		if errors.As(err, &urlErr) || strings.Contains(err.Error(), uri) {
			return errors.New("is not a valid URI (characters such as @ : / ? # % in the user name or password must be percent-encoded); " + want)
		}
		return fmt.Errorf("is not a valid AMQP URI: %w", err)
	}
	return nil
}

// validScheme reports whether s has the syntax of a URI scheme (RFC 3986 section 3.1), so that
// only a real scheme, never a fragment of a malformed URI, is quoted in an error.
func validScheme(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}
