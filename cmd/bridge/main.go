// Command bridge consumes an EventStream's RabbitMQ queue and serves the events to browsers
// as Server-Sent Events. Configuration: flags (docs/bridge.md), with RABBITMQ_* environment
// variables as defaults; the AMQP URI with credentials only from RABBITMQ_URL.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/internal/cli"
)

func main() {
	os.Exit(cli.Exit("bridge", run(os.Args[1:]), os.Stderr))
}

// run returns a *cli.UsageError for a command line or configuration the bridge refuses at start
// (bad flags, RABBITMQ_URL missing or not amqp[s]://, …): it never retries those.
func run(args []string) error {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	cfg := app.BindFlags(fs, os.Getenv)
	security := bindSecurityFlags(fs)
	if err := cli.Parse(fs, args, os.Stdout, true); err != nil {
		return err
	}
	if err := cli.NoArgs(fs); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return cli.Usage(err)
	}
	log, err := app.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return cli.Usage(err)
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
