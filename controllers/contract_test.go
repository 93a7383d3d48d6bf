package controllers

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/cors"
	bridgemetrics "github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// bridgeFlagSet is the bridge binary's command line (cmd/bridge: app, auth and CORS flags).
func bridgeFlagSet() (*flag.FlagSet, *app.Config, *auth.Config, *cors.Config) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := app.BindFlags(fs, func(string) string { return "" })
	authCfg, corsCfg := &auth.Config{}, &cors.Config{}
	auth.RegisterFlags(fs, authCfg)
	cors.RegisterFlags(fs, corsCfg)
	return fs, cfg, authCfg, corsCfg
}

// snapshotMaxKeys is what spec.bridge.snapshot means for --snapshot-max-keys: 0 (off) without
// it, else maxKeys or its default.
func snapshotMaxKeys(s *esv1.SnapshotSpec) int {
	if s == nil {
		return 0
	}
	return int(orDefault(ptrValue(s.MaxKeys), 10000))
}

// TestBridgeParsesTheOperatorsArgs is the contract between the operator and the bridge: the
// args the operator generates parse with the bridge's own flag set (a renamed or removed flag
// fails here, not in e2e), and every EventStream field lands in the bridge's configuration.
func TestBridgeParsesTheOperatorsArgs(t *testing.T) {
	for _, es := range []*esv1.EventStream{fullStream(), {Spec: esv1.EventStreamSpec{Bridge: esv1.BridgeSpec{Auth: esv1.BridgeAuthSpec{Mode: esv1.AuthModeNone}}}}} {
		fs, cfg, authCfg, corsCfg := bridgeFlagSet()
		if err := fs.Parse(bridgeArgs(es)); err != nil {
			t.Fatalf("the bridge refuses the operator's args: %v\nargs: %q", err, bridgeArgs(es))
		}
		topo := desiredTopology(es)
		b := es.Spec.Bridge
		checks := []struct {
			name      string
			got, want any
		}{
			{"exchange", cfg.Exchange, topo.Exchange},
			{"queue", cfg.Queue, topo.Queue},
			{"queue type", cfg.QueueType, topo.QueueType},
			{"prefetch", cfg.Prefetch, int(orDefault(es.Spec.Consumer.Prefetch, 100))},
			{"dead-letter exchange", cfg.DeadLetterExch, topo.DeadLetterExchange},
			{"path", cfg.Path, orDefault(b.Path, "/api/v1/events")},
			{"routing key template", cfg.RoutingKeyTemplate, orDefault(b.RoutingKeyTemplate, "team.{team_id}.job.{job_id}.status")},
			{"tenant placeholder", cfg.TenantParam, orDefault(b.TenantPlaceholder, "team_id")},
			{"heartbeat", cfg.Heartbeat, durationOr(b.Heartbeat, 15*time.Second)},
			{"buffer size", cfg.BufferSize, int(orDefault(b.Buffer.Size, 256))},
			{"overflow", cfg.Overflow, string(orDefault(b.Buffer.Overflow, esv1.OverflowDropOldest))},
			{"replay size", cfg.ReplaySize, int(orDefault(b.Replay.Size, 1000))},
			{"max connections", cfg.MaxConnections, int(orDefault(b.Limits.MaxConnections, 10000))},
			{"per tenant", cfg.MaxConnectionsPerTenant, int(orDefault(b.Limits.MaxConnectionsPerTenant, 1000))},
			{"per subject", cfg.MaxConnectionsPerSubject, int(orDefault(b.Limits.MaxConnectionsPerSubject, 100))},
			{"snapshot max keys (0: off)", cfg.SnapshotMaxKeys, snapshotMaxKeys(b.Snapshot)},
			{"CORS origins", fmt.Sprint(corsCfg.AllowedOrigins), fmt.Sprint(b.CORS.AllowedOrigins)},
			{"auth mode", authCfg.Mode, map[bool]string{true: auth.ModeNone, false: auth.ModeJWT}[b.Auth.Mode == esv1.AuthModeNone]},
		}
		if jwt := b.Auth.JWT; jwt != nil {
			algs := make([]string, 0, len(jwt.Algorithms))
			for _, a := range jwt.Algorithms {
				algs = append(algs, string(a))
			}
			checks = append(checks, []struct {
				name      string
				got, want any
			}{
				{"HS256 secret from the env the pod sets", authCfg.HS256SecretEnv, envJWTHS256Secrets},
				{"algorithms", fmt.Sprint(authCfg.Algorithms), fmt.Sprint(algs)},
				{"audience", slices.Contains(authCfg.Audience, jwt.Audience), true},
				{"issuer", authCfg.Issuer, jwt.Issuer},
				{"tenants claim", authCfg.TenantsClaim, jwt.TenantsClaim},
				{"required scope", authCfg.RequiredScope, jwt.RequiredScope},
				{"cookie", authCfg.Cookie, jwt.Cookie},
			}...)
		}
		if snap := b.Snapshot; snap != nil {
			checks = append(checks, []struct {
				name      string
				got, want any
			}{
				{"snapshot max bytes", int64(cfg.SnapshotMaxBytes), snap.MaxBytes.Value()},
				{"snapshot max age", cfg.SnapshotMaxAge, snapshotMaxAge(es)},
			}...)
		}
		if tls := es.Spec.RabbitMQ.TLS; tls != nil {
			checks = append(checks, struct {
				name      string
				got, want any
			}{"CA file", cfg.AMQPCAFile, caMountDir + "/" + tls.CASecret.Key})
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Errorf("%s: the bridge got %v, the spec says %v", c.name, c.got, c.want)
			}
		}
	}
}

// TestOperatorScrapesTheBridgesSnapshotMetrics: the names status reads are the bridge's.
func TestOperatorScrapesTheBridgesSnapshotMetrics(t *testing.T) {
	if metricSnapKeys != bridgemetrics.SnapshotKeys || metricSnapBytes != bridgemetrics.SnapshotBytes {
		t.Errorf("operator reads %s and %s, the bridge exports %s and %s",
			metricSnapKeys, metricSnapBytes, bridgemetrics.SnapshotKeys, bridgemetrics.SnapshotBytes)
	}
}
