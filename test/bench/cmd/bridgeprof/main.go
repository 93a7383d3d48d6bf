// Command bridgeprof is the bridge (cmd/bridge: same packages, same flags) with Go's pprof
// endpoints on --pprof-listen, for profiling under the harness's load:
//
//	bench --bridge bin/bridgeprof --bridge-flags "--pprof-listen 127.0.0.1:6060"
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
//
// CORS and tracing, which cmd/bridge adds, are left out (off in the benchmark anyway).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bridgeprof:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bridgeprof", flag.ContinueOnError)
	cfg := app.BindFlags(fs, os.Getenv)
	var authCfg auth.Config
	auth.RegisterFlags(fs, &authCfg)
	pprofListen := fs.String("pprof-listen", "127.0.0.1:6060", "listen address of /debug/pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := app.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if cfg.Authenticator, err = auth.New(ctx, authCfg, log); err != nil {
		return err
	}
	cfg.Metrics = metrics.New()
	go func() { log.Error("pprof listener", "error", http.ListenAndServe(*pprofListen, nil)) }()

	b, err := app.Start(cfg, log)
	if err != nil {
		return err
	}
	sig, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-sig.Done():
	case err := <-b.Failed():
		log.Error("listener failed", "error", err)
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancelShutdown()
	return b.Shutdown(shutdownCtx)
}
