// Command eventctl publishes events to an EventStream's exchange, tails a bridge's SSE
// stream, inspects a queue, and mints tokens for a bridge in JWT mode.
//
//	eventctl publish --team 42 --job 7 --status running --progress 50
//	eventctl publish --team 42 --job 7 --count 10000 --rate 500
//	eventctl publish --stdin < events.jsonl
//	eventctl tail 'http://localhost:8080/api/v1/events?team_id=42'
//	eventctl inspect --queue events.sse
//	eventctl token --secret-file jwt-secret --team 42
//
// The AMQP URI with credentials comes only from RABBITMQ_URL; a bearer token for tail from
// EVENTCTL_TOKEN.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventstream-operator/eventstream-operator/internal/cli"
	"github.com/eventstream-operator/eventstream-operator/internal/version"
)

const usage = `usage: eventctl <command> [flags]

commands:
  publish   publish events (JSON contract of docs/events.md) with publisher confirms
  tail      print the events of a bridge's SSE stream, reconnecting with Last-Event-ID
  inspect   show a queue's message and consumer counts
  token     mint an HS256 JWT for tenants from the bridge's secret, to try JWT mode

Run "eventctl <command> -h" for the command's flags; "eventctl --version" for the version.
Environment: RABBITMQ_URL (publish, inspect), EVENTCTL_TOKEN (tail: bearer token).
Exit status: 0 success, 1 failure, 2 usage error (nothing was attempted).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Exit("eventctl", run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.Usagef("no command")
	}
	switch args[0] {
	case "publish":
		return runPublish(ctx, args[1:], os.Getenv, stdin, stdout, stderr)
	case "tail":
		return runTail(ctx, args[1:], os.Getenv, stdout, stderr)
	case "inspect":
		return runInspect(ctx, args[1:], os.Getenv, stdout, stderr)
	case "token":
		return runToken(args[1:], stdin, stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, version.Version)
		return nil
	}
	return cli.Usagef("unknown command %q (commands: publish, tail, inspect, token; see eventctl -h)", args[0])
}

// usageFunc returns a FlagSet usage that shows the command's synopsis, then its flags.
func usageFunc(fs *flag.FlagSet, synopsis string) func() {
	return func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
}
