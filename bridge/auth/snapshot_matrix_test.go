package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestSnapshotAuthMatrixThroughTheBridge (issue 15): snapshot=1 is scoped exactly like live
// events through the real bridge. Every refused token or tenant gets its status and no event;
// tenant A's snapshots — without team_id, with it, after a gap for a foreign id, with filter
// tricks — hold A's keys only, though B's keys are in the same store.
func TestSnapshotAuthMatrixThroughTheBridge(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	iss := newIssuer(t)
	authCfg := auth.Config{
		Mode: auth.ModeJWT, JWKSURL: iss.server.URL, Algorithms: []string{"RS256"},
		Audience: []string{"eventstream"}, Issuer: "https://issuer.test",
		JWKSMinRefreshGap: time.Hour, Leeway: 5 * time.Second, QueryParameter: "access_token",
		TenantsClaim: "teams", RequiredScope: "events:read",
	}
	b := startBridge(t, node, authCfg, func(c *app.Config) { c.SnapshotMaxKeys = 100 })
	b.publish(t, tenantB, "snapshot-B")
	b.publish(t, tenantA, "snapshot-A")
	valid := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", nil)

	// snapshot reads the snapshot of query with token, or the status and body of a refusal.
	snapshot := func(t *testing.T, token, query string) (datas []string, status int, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp := b.open(t, ctx, token, query)
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, resp.StatusCode, string(raw)
		}
		dec := sse.NewDecoder(resp.Body, 0)
		for {
			m, err := dec.Next()
			if err != nil {
				t.Fatalf("read snapshot: %v (after %q)", err, datas)
			}
			switch m.Name {
			case "snapshot":
				datas = append(datas, m.Data)
			case "snapshot-end":
				return datas, 200, ""
			}
		}
	}
	// Both events are in the store before the checks.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got, _, _ := snapshot(t, valid, "snapshot=1"); len(got) == 1 && strings.Contains(got[0], "snapshot-A") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tenant A's event did not reach the snapshot within 20s")
		}
		time.Sleep(50 * time.Millisecond) // poll, bounded by the deadline
	}
	keys, _ := b.metrics.Registry.Gather()
	for _, f := range keys {
		if f.GetName() == "eventstream_bridge_snapshot_keys" && f.GetMetric()[0].GetGauge().GetValue() != 2 {
			t.Fatalf("the store holds %v keys, want both tenants' 2", f.GetMetric()[0].GetGauge().GetValue())
		}
	}

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forged := iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["teams"] = []any{tenantA, tenantB} })
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
	algNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"key-1"}`)) + "." + strings.Split(forged, ".")[1] + "."
	for _, tc := range []struct {
		name, token, query string
		status             int
	}{
		{"tenant A asks for B's snapshot", valid, "snapshot=1&team_id=" + tenantB, 403},
		{"tenant A asks for A's and B's", valid, "snapshot=1&team_id=" + tenantA + "&team_id=" + tenantB, 403},
		{"no token", "", "snapshot=1", 401},
		{"expired", iss.sign(t, jwt.SigningMethodRS256, iss.key, "key-1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "snapshot=1", 401},
		{"tampered claims", tampered, "snapshot=1", 401},
		{"alg none", algNone, "snapshot=1", 401},
		{"signed by another key", iss.sign(t, jwt.SigningMethodRS256, otherKey, "key-1", nil), "snapshot=1", 401},
		{"wildcard tenant", valid, "snapshot=1&team_id=*", 400},
		{"multi-word wildcard", valid, "snapshot=1&team_id=%23", 400},
		{"tenant spanning segments", valid, "snapshot=1&team_id=" + tenantA + ".job.1", 400},
		{"snapshot twice", valid, "snapshot=1&snapshot=1", 400},
		{"unknown parameter", valid, "snapshot=1&teams=" + tenantB, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, status, body := snapshot(t, tc.token, tc.query)
			if status != tc.status || len(got) > 0 || strings.Contains(body, "snapshot-") {
				t.Fatalf("status %d (%q), %d snapshot events; want %d and nothing", status, body, len(got), tc.status)
			}
		})
	}
	for _, query := range []string{"snapshot=1", "snapshot=1&team_id=" + tenantA, "snapshot=1&job_id=1",
		"snapshot=1&lastEventId=ffffffff-1", "snapshot=true&team_id=" + tenantA + "&team_id=" + tenantA} {
		t.Run("tenant A reads only A ("+query+")", func(t *testing.T) {
			got, status, body := snapshot(t, valid, query)
			if status != 200 || len(got) != 1 || !strings.Contains(got[0], "snapshot-A") {
				t.Fatalf("status %d (%q), snapshot %q; want A's event only", status, body, got)
			}
		})
	}
}
