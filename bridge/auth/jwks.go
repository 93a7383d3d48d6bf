package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// jwksKeys holds the public keys of a JSON Web Key Set fetched over HTTP.
//
// The set is fetched at start, then every refreshInterval by a goroutine that runs until the
// context given to run is done (closing done when it has returned). A token naming a key id
// the set lacks causes one extra fetch, at most once per minGap over all requests, so a client
// inventing key ids cannot make the bridge hammer the issuer. Every fetch is bounded by
// fetchTimeout and maxBytes. When a fetch fails the previous set stays in use.
type jwksKeys struct {
	url             string
	client          *http.Client
	maxBytes        int64
	fetchTimeout    time.Duration
	refreshInterval time.Duration
	minGap          time.Duration
	logger          *slog.Logger
	now             func() time.Time

	set atomic.Pointer[jwkSet] // nil until the first successful fetch

	fetchMu sync.Mutex // one fetch at a time

	demandMu   sync.Mutex
	lastDemand time.Time // start of the last fetch caused by a request

	done chan struct{}
}

type jwkSet struct {
	byKID map[string]jwkEntry
	all   []jwkEntry
}

type jwkEntry struct {
	alg string // the JWK's alg, empty when it does not say
	key crypto.PublicKey
}

func newJWKSKeys(cfg Config, logger *slog.Logger) (*jwksKeys, error) {
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("auth JWKS URL: want an absolute http or https URL")
	}
	if u.Scheme == "http" {
		logger.Warn("auth JWKS URL is plain http: keys can be forged by anyone on the path; use https outside tests", "url", u.Redacted())
	}
	return &jwksKeys{
		url:             cfg.JWKSURL,
		client:          &http.Client{Timeout: cfg.JWKSFetchTimeout},
		maxBytes:        cfg.JWKSMaxBytes,
		fetchTimeout:    cfg.JWKSFetchTimeout,
		refreshInterval: cfg.JWKSRefreshInterval,
		minGap:          cfg.JWKSMinRefreshGap,
		logger:          logger.With("jwks", u.Redacted()),
		now:             time.Now,
		done:            make(chan struct{}),
	}, nil
}

// run refreshes the key set until ctx is done. While no set has been fetched yet it retries
// every minGap instead of every refreshInterval.
func (k *jwksKeys) run(ctx context.Context) {
	defer close(k.done)
	for {
		wait := k.refreshInterval
		if k.set.Load() == nil {
			wait = k.minGap
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if err := k.fetch(ctx); err != nil {
			k.logger.Warn("auth JWKS refresh failed; keeping the previous keys", "error", err)
		}
	}
}

func (k *jwksKeys) verificationKeys(ctx context.Context, token *jwt.Token) (any, error) {
	kid, _ := token.Header["kid"].(string)
	set := k.set.Load()
	if set == nil || (kid != "" && !set.has(kid)) {
		if k.mayFetchOnDemand() {
			// Detached from the request: a client that hangs up must not cancel the one fetch
			// the rate limit allows (fetch is still bounded by fetchTimeout).
			if err := k.fetch(context.WithoutCancel(ctx)); err != nil {
				k.logger.Warn("auth JWKS fetch for an unknown key id failed", "error", err)
			}
			set = k.set.Load()
		}
	}
	if set == nil {
		return nil, errJWKSUnavailable
	}
	if kid != "" {
		entry, ok := set.byKID[kid]
		if !ok {
			return nil, errUnknownKID
		}
		if !entry.fits(token.Method) {
			return nil, errKeyMismatch
		}
		return entry.key, nil
	}
	var keys jwt.VerificationKeySet
	for _, entry := range set.all {
		if entry.fits(token.Method) {
			keys.Keys = append(keys.Keys, entry.key)
		}
	}
	if len(keys.Keys) == 0 {
		return nil, errKeyMismatch
	}
	return keys, nil
}

func (s *jwkSet) has(kid string) bool {
	_, ok := s.byKID[kid]
	return ok
}

func (e jwkEntry) fits(method jwt.SigningMethod) bool {
	return (e.alg == "" || e.alg == method.Alg()) && keyFitsMethod(e.key, method)
}

// mayFetchOnDemand reports whether a request may cause a fetch now, and if so records it.
func (k *jwksKeys) mayFetchOnDemand() bool {
	k.demandMu.Lock()
	defer k.demandMu.Unlock()
	now := k.now()
	if !k.lastDemand.IsZero() && now.Sub(k.lastDemand) < k.minGap {
		return false
	}
	k.lastDemand = now
	return true
}

// fetch downloads and parses the key set and, when it holds at least one usable key, makes it
// the current set.
func (k *jwksKeys) fetch(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, k.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("build JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, k.maxBytes+1))
	if err != nil {
		return fmt.Errorf("read JWKS: %w", err)
	}
	if int64(len(body)) > k.maxBytes {
		return fmt.Errorf("read JWKS: larger than %d bytes", k.maxBytes)
	}
	set, skipped, err := parseJWKSet(body)
	if err != nil {
		return err
	}
	if skipped > 0 {
		k.logger.Info("auth JWKS: skipped keys that are not public signature keys", "skipped", skipped, "kept", len(set.all))
	}
	k.set.Store(set)
	return nil
}

// parseJWKSet keeps the public signature keys of a JWKS document: RSA, ECDSA and Ed25519 keys
// whose use is sig or unset. Symmetric keys, encryption keys and keys that do not parse are
// skipped and counted. A document with no usable key is an error.
func parseJWKSet(body []byte) (*jwkSet, int, error) {
	var doc jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, fmt.Errorf("decode JWKS: %w", err)
	}
	set := &jwkSet{byKID: map[string]jwkEntry{}}
	skipped := 0
	for _, marshal := range doc.Keys {
		if marshal.USE != "" && marshal.USE != jwkset.UseSig || marshal.KTY == jwkset.KtyOct {
			skipped++
			continue
		}
		// Private members are dropped before parsing: only the public half is ever used.
		marshal.D, marshal.P, marshal.Q, marshal.DP, marshal.DQ, marshal.QI, marshal.OTH = "", "", "", "", "", "", nil
		parsed, err := jwkset.NewJWKFromMarshal(marshal, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil || !isSupportedPublicKey(parsed.Key()) {
			skipped++
			continue
		}
		entry := jwkEntry{alg: string(marshal.ALG), key: parsed.Key()}
		set.all = append(set.all, entry)
		if marshal.KID != "" {
			set.byKID[marshal.KID] = entry
		}
	}
	if len(set.all) == 0 {
		return nil, skipped, errors.New("JWKS holds no usable public signature key")
	}
	return set, skipped, nil
}
