package bench

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// HS256Token returns a compact JWT signed with secret that grants tenants with the bridge's
// default required scope (events:read), valid for ttl.
func HS256Token(secret []byte, tenants []string, ttl time.Duration) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"sub":                        "bench",
		contract.DefaultTenantsClaim: tenants,
		"scope":                      contract.DefaultRequiredScope,
		"exp":                        time.Now().Add(ttl).Unix(),
	})
	signingInput := header + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
