// Command bridge consumes an EventStream's RabbitMQ queue and serves the events to browsers
// as Server-Sent Events. Configuration: flags (docs/bridge.md), with RABBITMQ_* environment
// variables as defaults; the AMQP URI with credentials only from RABBITMQ_URL.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	cfg := app.BindFlags(fs, os.Getenv)
	security := bindSecurityFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := app.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	stopSecurity, err := setupSecurity(cfg, security, log)
	if err != nil {
		return err
	}
	defer stopSecurity()

	b, err := app.Start(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-b.Failed():
		log.Error("listener failed", "error", err)
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	return b.Shutdown(shutdownCtx)
}
