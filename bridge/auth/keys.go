package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// keySource returns the keys a token may be verified with. Its errors are errUnknownKID,
// errJWKSUnavailable or errKeyMismatch (possibly wrapped).
type keySource interface {
	verificationKeys(ctx context.Context, token *jwt.Token) (any, error)
}

var (
	errUnknownKID      = errors.New("no key with the token's key id")
	errJWKSUnavailable = errors.New("key set unavailable")
	errKeyMismatch     = errors.New("no key for the token's algorithm")
)

// staticKeys are keys loaded once at start: HMAC secrets or PEM public keys. Several keys
// exist during a rotation; a token verifies when any key compatible with its algorithm accepts it.
type staticKeys struct {
	keys []any
}

func (s staticKeys) verificationKeys(_ context.Context, token *jwt.Token) (any, error) {
	var set jwt.VerificationKeySet
	for _, key := range s.keys {
		if keyFitsMethod(key, token.Method) {
			set.Keys = append(set.Keys, key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, errKeyMismatch
	}
	return set, nil
}

// keyFitsMethod reports whether key has the type method verifies with, so that a key of one kind
// is never handed to another algorithm family (the root of algorithm-confusion attacks).
func keyFitsMethod(key any, method jwt.SigningMethod) bool {
	switch method.(type) {
	case *jwt.SigningMethodHMAC:
		_, ok := key.([]byte)
		return ok
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		_, ok := key.(*ecdsa.PublicKey)
		return ok
	case *jwt.SigningMethodEd25519:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// ParseHS256Secrets returns the HMAC secrets of text as the bridge reads its secret file or
// variable: one secret per line (several during a rotation), trailing spaces, tabs and CRs of
// each line ignored, empty lines skipped, each secret at least 32 bytes. Tools that sign tokens
// for the bridge (eventctl token) read a secret the same way. Errors never contain a secret.
func ParseHS256Secrets(text string) ([][]byte, error) {
	var secrets [][]byte
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" {
			continue
		}
		if len(line) < minHMACSecretBytes {
			return nil, fmt.Errorf("shorter than %d bytes", minHMACSecretBytes)
		}
		secrets = append(secrets, []byte(line))
	}
	if len(secrets) == 0 {
		return nil, errors.New("empty")
	}
	return secrets, nil
}

// loadHMACSecrets reads secrets, one per line, from the file and/or environment variable named in
// cfg. Errors name the source, never its contents.
func loadHMACSecrets(cfg Config) (staticKeys, error) {
	var keys staticKeys
	add := func(source, text string) error {
		secrets, err := ParseHS256Secrets(text)
		if err != nil {
			return fmt.Errorf("HS256 secret in %s: %w", source, err)
		}
		for _, secret := range secrets {
			keys.keys = append(keys.keys, secret)
		}
		return nil
	}
	if cfg.HS256SecretFile != "" {
		content, err := os.ReadFile(cfg.HS256SecretFile)
		if err != nil {
			return keys, fmt.Errorf("read HS256 secret file: %w", err)
		}
		if err := add(fmt.Sprintf("file %q", cfg.HS256SecretFile), string(content)); err != nil {
			return keys, err
		}
	}
	if cfg.HS256SecretEnv != "" {
		value, ok := os.LookupEnv(cfg.HS256SecretEnv)
		if !ok {
			return keys, fmt.Errorf("HS256 secret: environment variable %q is not set", cfg.HS256SecretEnv)
		}
		if err := add(fmt.Sprintf("environment variable %q", cfg.HS256SecretEnv), value); err != nil {
			return keys, err
		}
	}
	return keys, nil
}

// loadPublicKeys reads every PUBLIC KEY, RSA PUBLIC KEY and CERTIFICATE block of a PEM file.
// Private keys are refused: the bridge only ever needs the public half.
func loadPublicKeys(path string) (staticKeys, error) {
	var keys staticKeys
	content, err := os.ReadFile(path)
	if err != nil {
		return keys, fmt.Errorf("read public key file: %w", err)
	}
	for rest := content; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var key any
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return keys, fmt.Errorf("public key file %q holds a private key: give the bridge only the public key", path)
			}
			continue
		}
		if err != nil {
			return keys, fmt.Errorf("parse %s in %q: %w", block.Type, path, err)
		}
		if !isSupportedPublicKey(key) {
			return keys, fmt.Errorf("public key file %q: unsupported key type %T", path, key)
		}
		keys.keys = append(keys.keys, key)
	}
	if len(keys.keys) == 0 {
		return keys, fmt.Errorf("public key file %q: no PEM public key or certificate", path)
	}
	return keys, nil
}

func isSupportedPublicKey(key crypto.PublicKey) bool {
	switch key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	}
	return false
}
