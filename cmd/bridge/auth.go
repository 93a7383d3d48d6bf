package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/cors"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/bridge/tracing"
)

// securityFlags holds the --auth-* and --cors-* flags (docs/security.md).
type securityFlags struct {
	auth auth.Config
	cors cors.Config
}

func bindSecurityFlags(fs *flag.FlagSet) *securityFlags {
	f := &securityFlags{}
	auth.RegisterFlags(fs, &f.auth)
	cors.RegisterFlags(fs, &f.cors)
	return f
}

// setupSecurity fills cfg's authenticator, auth metrics, CORS middleware and tracing hook, and
// starts what they own: the JWKS refresher and the trace exporter. The returned stop ends both
// (flushing pending spans); call it after the bridge has shut down. A tracing setup error is
// logged and tracing stays off: it must not keep the bridge from serving.
func setupSecurity(cfg *app.Config, f *securityFlags, log *slog.Logger) (stop func(), err error) {
	policy, err := cors.New(f.cors)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	authenticator, err := auth.New(ctx, f.auth, log)
	if err != nil {
		cancel()
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	authMetrics, err := auth.NewMetrics(cfg.Metrics.Registry)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("register auth metrics: %w", err)
	}
	cfg.Authenticator = authenticator
	cfg.AuthMetrics = authMetrics
	cfg.Middleware = policy.Handler

	shutdownTracing, err := tracing.Setup(ctx, "eventstream-bridge")
	if err != nil {
		log.Error("tracing disabled", "error", err)
	} else if tracing.Enabled() {
		log.Info("tracing on: exporting spans over OTLP", "protocol", tracing.Protocol())
	}
	if observe := tracing.DeliveryObserver(cfg.Queue); observe != nil {
		cfg.Observe = observe
	}
	return func() {
		flushCtx, cancelFlush := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		defer cancelFlush()
		if err := shutdownTracing(flushCtx); err != nil {
			log.Warn("flush traces", "error", err)
		}
		cancel()
	}, nil
}
