// Package bridgetest starts a bridge inside the test process, the way cmd/bridge does (flags
// parsed by the bridge's own flag set), for tests outside package app. Tests of package app
// have their own harness (bridge/app/harness_test.go): a package's own tests cannot import a
// helper that imports it. To run the binary as a process, build it with
// clitest.Build(t, clitest.BridgePackage, "").
package bridgetest

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// Options adjust Start; the zero value starts a bridge without authentication.
type Options struct {
	// Authenticator decides who a request is; nil: auth.None().
	Authenticator auth.Authenticator
	// Logger receives the bridge's logs; nil: discarded, or debug on stderr when
	// BRIDGE_TEST_LOG is set.
	Logger *slog.Logger
	// Configure, when set, adjusts the configuration after the flags are parsed and before
	// the start (CORS middleware, metrics registry, auth metrics).
	Configure func(*app.Config)
}

// startTimeout bounds the wait for a new bridge to consume.
const startTimeout = 30 * time.Second

// Start starts a bridge against the broker at uri with the flags args, after defaults for
// tests (listeners on loopback port 0, the topology declared by the bridge itself), waits
// until it is ready (consuming) and shuts it down when the test ends.
func Start(t testing.TB, uri string, opts Options, args ...string) *app.Bridge {
	t.Helper()
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	cfg := app.BindFlags(fs, func(key string) string {
		if key == contract.EnvRabbitMQURL {
			return uri
		}
		return ""
	})
	base := []string{
		contract.Arg(contract.FlagListen, "127.0.0.1:0"),
		contract.Arg(contract.FlagMetricsListen, "127.0.0.1:0"),
		"--declare-topology",
	}
	if err := fs.Parse(append(base, args...)); err != nil {
		t.Fatalf("bridge flags: %v", err)
	}
	cfg.Authenticator = opts.Authenticator
	if cfg.Authenticator == nil {
		cfg.Authenticator = auth.None()
	}
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	log := opts.Logger
	if log == nil {
		log = testLogger()
	}
	b, err := app.Start(cfg, log)
	if err != nil {
		t.Fatalf("start bridge: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
	})
	poll.Until(t, startTimeout, "the bridge to consume", b.Ready)
	return b
}

// testLogger discards the bridge's logs unless BRIDGE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
