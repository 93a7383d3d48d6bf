package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/tracing"
	"github.com/eventstream-operator/eventstream-operator/internal/cli"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
	"github.com/eventstream-operator/eventstream-operator/publish"
)

// maxInFlight bounds the confirms a load run waits for at once.
const maxInFlight = 256

type publishFlags struct {
	exchange, template, caFile string
	team, job, status, evType  string
	message                    string
	progress, count            int
	rate                       float64
	stdin                      bool
	retry                      publish.RetryPolicy
}

func runPublish(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eventctl publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f publishFlags
	exchangeDefault := getenv(contract.EnvEventsExchange)
	if exchangeDefault == "" {
		exchangeDefault = events.DefaultExchange
	}
	fs.StringVar(&f.exchange, "exchange", exchangeDefault, "topic exchange (env RABBITMQ_EVENTS_EXCHANGE)")
	fs.StringVar(&f.template, "routing-key-template", events.DefaultRoutingKeyTemplate, "routing-key template")
	fs.StringVar(&f.caFile, "amqp-ca-file", "", "PEM CA file for amqps://")
	fs.StringVar(&f.team, "team", "", "team_id of the event (tenant)")
	fs.StringVar(&f.job, "job", "", "job_id of the event")
	fs.StringVar(&f.status, "status", "running", "status of the event")
	fs.StringVar(&f.evType, "type", "job.status", "type of the event")
	fs.StringVar(&f.message, "message", "", "message of the event")
	fs.IntVar(&f.progress, "progress", 0, "progress in percent, 0..100")
	fs.IntVar(&f.count, "count", 1, "number of events to publish (load); progress runs from 0 to 100")
	fs.Float64Var(&f.rate, "rate", 0, "events per second (0: as fast as confirms allow)")
	fs.BoolVar(&f.stdin, "stdin", false, "read events from stdin, one JSON event per line; --team/--job ignored")
	fs.IntVar(&f.retry.Attempts, "retry-attempts", publish.DefaultRetryPolicy.Attempts,
		"publishes in all of an event the broker returns as unroutable (no queue took it) before eventctl fails")
	fs.DurationVar(&f.retry.InitialBackoff, "retry-backoff", publish.DefaultRetryPolicy.InitialBackoff,
		"pause before republishing a returned event; doubles per retry up to --retry-max-backoff")
	fs.DurationVar(&f.retry.MaxBackoff, "retry-max-backoff", publish.DefaultRetryPolicy.MaxBackoff, "longest pause between retries")
	fs.Usage = usageFunc(fs, "eventctl publish [flags]")
	if err := cli.Parse(fs, args, stdout, false); err != nil {
		return err
	}
	if err := checkPublishFlags(fs, f, getenv); err != nil {
		return err
	}
	url := getenv(contract.EnvRabbitMQURL)
	if url == "" {
		return errors.New("RABBITMQ_URL is not set (the AMQP URI with credentials comes only from the environment)")
	}
	tmpl, err := events.ParseTemplate(f.template)
	if err != nil {
		return err
	}
	tlsConfig, err := loadCA(f.caFile)
	if err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(ctx, "eventctl")
	if err != nil {
		fmt.Fprintln(stderr, "eventctl: tracing disabled:", err)
	}
	if stopTracing != nil {
		defer func() { _ = stopTracing(context.Background()) }()
	}
	pub, err := publish.Dial(url, tlsConfig, publish.PublisherConfig{Exchange: f.exchange, HeaderInjector: tracing.Inject, Retry: f.retry})
	if err != nil {
		return err
	}
	defer pub.Close()

	if f.stdin {
		return publishStdin(ctx, pub, tmpl, f.exchange, stdin, stdout)
	}
	if f.count < 1 {
		return fmt.Errorf("--count %d: want at least 1", f.count)
	}
	if f.count == 1 {
		ev := events.Event{ID: events.NewID(), Type: f.evType, TeamID: f.team, JobID: f.job, Status: f.status,
			Progress: f.progress, Message: f.message, Time: time.Now().UTC()}
		if err := publishOne(ctx, pub, tmpl, f.exchange, ev); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "published %s\n", ev.ID)
		return nil
	}
	return publishLoad(ctx, pub, tmpl, f, stdout)
}

// publishOne publishes ev inside a producer span (when tracing is on) and waits until the
// publish is done: confirmed and not returned (a returned event is retried, then an error).
func publishOne(ctx context.Context, pub *publish.Publisher, tmpl *events.Template, exchange string, ev events.Event) error {
	key, err := ev.RoutingKey(tmpl)
	if err != nil {
		return err
	}
	ctx, span := tracing.StartPublish(ctx, exchange, key)
	defer span.End()
	return pub.PublishEvent(ctx, tmpl, ev, publish.PublishOptions{})
}

func publishStdin(ctx context.Context, pub *publish.Publisher, tmpl *events.Template, exchange string, stdin io.Reader, stdout io.Writer) error {
	scanner := bufio.NewScanner(stdin)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for line := 1; scanner.Scan(); line++ {
		text := scanner.Bytes()
		if len(text) == 0 {
			continue
		}
		var ev events.Event
		if err := json.Unmarshal(text, &ev); err != nil {
			return fmt.Errorf("stdin line %d: %w", line, err)
		}
		if ev.ID == "" {
			ev.ID = events.NewID()
		}
		if ev.Time.IsZero() {
			ev.Time = time.Now().UTC()
		}
		if err := publishOne(ctx, pub, tmpl, exchange, ev); err != nil {
			return fmt.Errorf("stdin line %d: %w", line, err)
		}
		n++
	}
	if err := scanner.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	fmt.Fprintf(stdout, "published %d events\n", n)
	return nil
}

// publishLoad publishes f.count events at f.rate with up to maxInFlight not yet done, and
// reports the achieved rate. It fails on the first event that is not published (nacked, or
// returned on every retry), naming it.
func publishLoad(ctx context.Context, pub *publish.Publisher, tmpl *events.Template, f publishFlags, stdout io.Writer) error {
	var tick <-chan time.Time
	if f.rate > 0 {
		ticker := time.NewTicker(time.Duration(float64(time.Second) / f.rate))
		defer ticker.Stop()
		tick = ticker.C
	}
	type pending struct {
		n       int
		confirm *publish.Confirmation
	}
	inFlight := make([]pending, 0, maxInFlight)
	waitAll := func() error {
		for _, p := range inFlight {
			if err := p.confirm.Wait(ctx); err != nil {
				return fmt.Errorf("event %d of %d: %w", p.n, f.count, err)
			}
		}
		inFlight = inFlight[:0]
		return nil
	}
	start := time.Now()
	for i := 0; i < f.count; i++ {
		if tick != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick:
			}
		}
		ev := events.Event{ID: events.NewID(), Type: f.evType, TeamID: f.team, JobID: f.job, Status: f.status,
			Progress: i * 100 / max(1, f.count-1), Message: fmt.Sprintf("event %d of %d", i+1, f.count), Time: time.Now().UTC()}
		if err := ev.Validate(); err != nil {
			return fmt.Errorf("invalid event: %w", err)
		}
		key, err := ev.RoutingKey(tmpl)
		if err != nil {
			return err
		}
		body, err := ev.Marshal()
		if err != nil {
			return err
		}
		c, err := pub.PublishDeferred(ctx, key, body, publish.PublishOptions{MessageID: ev.ID})
		if err != nil {
			return err
		}
		if inFlight = append(inFlight, pending{n: i + 1, confirm: c}); len(inFlight) == maxInFlight {
			if err := waitAll(); err != nil {
				return err
			}
		}
	}
	if err := waitAll(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "published %d events in %v (%.0f/s), all confirmed and routed (%d returned and retried)\n",
		f.count, elapsed.Round(time.Millisecond), float64(f.count)/elapsed.Seconds(), pub.Returned())
	return nil
}

func loadCA(file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read --amqp-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--amqp-ca-file %q holds no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
