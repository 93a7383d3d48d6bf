// Package cors lets browsers on other origins open the bridge's event stream.
//
// Origins are matched exactly against an explicit list. "*" allows every origin but only without
// credentials: a response never carries "Access-Control-Allow-Origin: *" together with
// "Access-Control-Allow-Credentials: true". A cross-origin request from an origin not on the
// list is refused with 403 before the stream starts, so the bridge spends nothing on a stream
// the browser would not let the page read.
package cors

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Config is the CORS policy of the event stream.
type Config struct {
	// AllowedOrigins are exact origins (scheme://host[:port]) or the single entry "*".
	// Empty: no CORS headers are sent and the Origin header is not checked (same-origin setups).
	AllowedOrigins []string
	// AllowCredentials lets pages send cookies (EventSource withCredentials). Not allowed with "*".
	AllowCredentials bool
	// MaxAge is how long a browser may cache a preflight answer.
	MaxAge time.Duration
}

// DefaultMaxAge is the preflight cache time RegisterFlags uses.
const DefaultMaxAge = 10 * time.Minute

// Request headers a preflight may ask for: EventSource sends Last-Event-ID and Cache-Control on
// reconnects; fetch-based SSE clients add Authorization.
const allowedHeaders = "Authorization, Last-Event-ID, Cache-Control"

// RegisterFlags adds the --cors-* flags to fs, storing into cfg.
func RegisterFlags(fs *flag.FlagSet, cfg *Config) {
	fs.Func(contract.FlagCORSAllowedOrigins, `comma-separated origins allowed to open the stream from a browser, e.g. https://app.example.com; "*" for any (not with credentials); empty: same-origin only, no CORS headers`, func(v string) error {
		cfg.AllowedOrigins = nil
		for _, origin := range strings.Split(v, ",") {
			if origin = strings.TrimSpace(origin); origin != "" {
				cfg.AllowedOrigins = append(cfg.AllowedOrigins, origin)
			}
		}
		return nil
	})
	fs.BoolVar(&cfg.AllowCredentials, "cors-allow-credentials", false, "allow cross-origin requests with cookies (EventSource withCredentials); needs explicit origins")
	fs.DurationVar(&cfg.MaxAge, "cors-max-age", DefaultMaxAge, "how long browsers may cache a preflight answer")
}

// Policy is a validated Config.
type Policy struct {
	origins     map[string]bool
	anyOrigin   bool
	credentials bool
	maxAge      string
}

// New validates cfg. Origins are normalised (lower-case scheme and host, default port dropped)
// and must not carry a path, query or user info.
func New(cfg Config) (*Policy, error) {
	p := &Policy{origins: map[string]bool{}, credentials: cfg.AllowCredentials}
	if cfg.MaxAge > 0 {
		p.maxAge = strconv.Itoa(int(cfg.MaxAge / time.Second))
	}
	for _, origin := range cfg.AllowedOrigins {
		if origin == "*" {
			p.anyOrigin = true
			continue
		}
		normal, err := normaliseOrigin(origin)
		if err != nil {
			return nil, err
		}
		p.origins[normal] = true
	}
	if p.anyOrigin && cfg.AllowCredentials {
		return nil, errors.New(`cors: "*" cannot be combined with credentials; list the origins explicitly`)
	}
	if cfg.AllowCredentials && len(p.origins) == 0 {
		return nil, errors.New("cors: credentials need at least one allowed origin")
	}
	return p, nil
}

func normaliseOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("cors: allowed origin %q: want scheme://host[:port]", origin)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// enabled reports whether any origin is allowed.
func (p *Policy) enabled() bool { return p.anyOrigin || len(p.origins) > 0 }

// allows reports whether the request's Origin header value may read the stream.
func (p *Policy) allows(origin string) bool {
	if p.anyOrigin {
		return true
	}
	normal, err := normaliseOrigin(origin)
	return err == nil && p.origins[normal]
}

// Handler wraps next, the event stream handler. It answers preflights (OPTIONS with
// Access-Control-Request-Method) itself: 204 allowing GET and the headers EventSource and
// fetch clients send, or 403 for an origin not allowed. For other requests with an Origin
// header it adds the CORS response headers, or answers 403 when the origin is not allowed.
// Requests without Origin (same-origin GETs, curl) pass through unchanged. With no allowed
// origins configured Handler returns next itself.
func (p *Policy) Handler(next http.Handler) http.Handler {
	if !p.enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := w.Header()
		header.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			header.Add("Vary", "Access-Control-Request-Method")
			header.Add("Vary", "Access-Control-Request-Headers")
		}
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		if !p.allows(origin) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		if p.anyOrigin {
			header.Set("Access-Control-Allow-Origin", "*")
		} else {
			header.Set("Access-Control-Allow-Origin", origin)
		}
		if p.credentials {
			header.Set("Access-Control-Allow-Credentials", "true")
		}
		if !preflight {
			next.ServeHTTP(w, r)
			return
		}
		method := r.Header.Get("Access-Control-Request-Method")
		if !slices.Contains([]string{http.MethodGet, http.MethodHead}, method) {
			http.Error(w, "method not allowed", http.StatusForbidden)
			return
		}
		header.Set("Access-Control-Allow-Methods", "GET")
		header.Set("Access-Control-Allow-Headers", allowedHeaders)
		if p.maxAge != "" {
			header.Set("Access-Control-Max-Age", p.maxAge)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
