// Package app assembles the bridge: flags and environment into a Config, then consumer, hub,
// SSE handler and operations server into a running Bridge with a graceful shutdown.
package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	bridgeamqp "github.com/eventstream-operator/eventstream-operator/bridge/amqp"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// Environment keys read as defaults (flags win). Credentials come only from RABBITMQ_URL.
const (
	EnvURL        = "RABBITMQ_URL"
	EnvExchange   = "RABBITMQ_EVENTS_EXCHANGE"
	EnvQueue      = "RABBITMQ_EVENTS_QUEUE"
	EnvBindingKey = "RABBITMQ_EVENTS_BINDING_KEY"
	EnvPrefetch   = "RABBITMQ_PREFETCH_COUNT"
)

// Config is the bridge's configuration. Fields set from flags are listed in docs/bridge.md.
type Config struct {
	URL             string // from RABBITMQ_URL only
	AMQPCAFile      string
	Exchange        string
	Queue           string
	QueueType       string
	BindingKey      string
	DeclareTopology bool
	Prefetch        int
	DeadLetterExch  string

	Listen             string
	MetricsListen      string
	Path               string
	RoutingKeyTemplate string
	TenantParam        string
	Heartbeat          time.Duration
	Retry              time.Duration
	BufferSize         int
	Overflow           string
	ReplaySize         int
	MaxMessageBytes    int
	DrainTimeout       time.Duration
	BrokerLostGrace    time.Duration

	MaxConnections          int
	MaxConnectionsPerTenant int
	// MaxConnectionsPerSubject caps one caller's streams (the token's sub; a token without sub
	// is a subject of its own; not applied in auth mode none).
	MaxConnectionsPerSubject int
	MaxHeaderBytes           int
	ReadHeaderTimeout        time.Duration
	MaxFilterValues          int
	MaxStreamReaders         int

	LogLevel  string
	LogFormat string

	// Not flags: set by the main (auth helper) or tests.

	// Authenticator decides who a request is; nil is an error (use auth.None() explicitly).
	Authenticator auth.Authenticator
	// AuthMetrics counts auth outcomes (register it on Metrics.Registry); nil: not counted.
	AuthMetrics *auth.Metrics
	// Middleware wraps the SSE handler (CORS); nil: none.
	Middleware func(http.Handler) http.Handler
	// Observe is called per consumed delivery (tracing); nil: none.
	Observe bridgeamqp.DeliveryObserver
	// Backoff overrides reconnect delays (tests).
	Backoff bridgeamqp.Backoff
	// LagInterval overrides the lag sampling interval (tests).
	LagInterval time.Duration
	// Metrics, when set, is used instead of a new metrics.New(); create it first to register
	// more collectors (auth outcomes) on its Registry.
	Metrics *metrics.Metrics
}

// BindFlags registers the bridge's flags on fs with defaults from getenv, and returns the
// Config they fill when fs is parsed. RABBITMQ_URL is read here too; it has no flag.
func BindFlags(fs *flag.FlagSet, getenv func(string) string) *Config {
	c := &Config{URL: getenv(EnvURL)}
	envOr := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	prefetch := 1000 // docs/performance.md: 100 limits fan-out (DESIGN.md said 100)
	if v := getenv(EnvPrefetch); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			prefetch = n
		}
	}
	fs.StringVar(&c.AMQPCAFile, "amqp-ca-file", "", "PEM file of CAs to verify the broker's TLS certificate (amqps://)")
	fs.StringVar(&c.Exchange, "exchange", envOr(EnvExchange, "events.topic"), "topic exchange publishers send to (env "+EnvExchange+")")
	fs.StringVar(&c.Queue, "queue", envOr(EnvQueue, "events.sse"), "queue to consume (env "+EnvQueue+")")
	fs.StringVar(&c.QueueType, "queue-type", "classic", "queue type: classic, quorum or stream")
	fs.StringVar(&c.BindingKey, "binding-key", getenv(EnvBindingKey), "binding key for --declare-topology; default: the template with placeholders as * (env "+EnvBindingKey+")")
	fs.BoolVar(&c.DeclareTopology, "declare-topology", false, "declare exchange, queue, binding and dead-lettering itself (running by hand, tests); the operator normally does it")
	fs.IntVar(&c.Prefetch, "prefetch", prefetch, "consumer prefetch count, 1..65535 (env "+EnvPrefetch+")")
	fs.StringVar(&c.DeadLetterExch, "dead-letter-exchange", "", "dead-letter exchange for malformed messages; default <queue>.dlx")
	fs.StringVar(&c.Listen, "listen", ":8080", "SSE listen address")
	fs.StringVar(&c.MetricsListen, "metrics-listen", ":9090", "listen address of /metrics, /healthz, /readyz")
	fs.StringVar(&c.Path, "path", "/api/v1/events", "HTTP path of the event stream")
	fs.StringVar(&c.RoutingKeyTemplate, "routing-key-template", events.DefaultRoutingKeyTemplate, "routing-key template; its placeholders are the query filters")
	fs.StringVar(&c.TenantParam, "tenant-param", "team_id", "the template placeholder that names the tenant")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "interval of heartbeat comments")
	fs.DurationVar(&c.Retry, "retry", 3*time.Second, "reconnect delay sent to clients as retry:")
	fs.IntVar(&c.BufferSize, "buffer-size", 256, "events buffered per client")
	fs.StringVar(&c.Overflow, "overflow", "dropOldest", "full client buffer policy: dropOldest, lastValue or disconnect")
	fs.IntVar(&c.ReplaySize, "replay-size", 1000, "events kept in memory for Last-Event-ID resume (0: none)")
	fs.IntVar(&c.MaxMessageBytes, "max-message-bytes", 1<<20, "larger messages are dead-lettered as oversize")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "time to end streams and stop consuming on SIGTERM")
	fs.DurationVar(&c.BrokerLostGrace, "broker-lost-grace", 2*time.Second, "stream queues: after this long without the broker, end the open streams with a short retry: so clients resume on a replica that has it (0: never)")
	fs.IntVar(&c.MaxConnections, "max-connections", 10000, "open streams in total (0: unlimited)")
	fs.IntVar(&c.MaxConnectionsPerTenant, "max-connections-per-tenant", 1000, "open streams per tenant (0: unlimited)")
	fs.IntVar(&c.MaxConnectionsPerSubject, "max-connections-per-subject", 100, "open streams per subject, the token's sub; a token without sub counts as a subject of its own (0: unlimited)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 8<<10, "largest request header block")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "time a client has to send its request headers")
	fs.IntVar(&c.MaxFilterValues, "max-filter-values", 16, "filter values allowed in one request, over all parameters")
	fs.IntVar(&c.MaxStreamReaders, "max-stream-readers", 100, "stream mode: clients resuming from before the replay window served by their own stream reader at once; beyond: a gap")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
	return c
}

// Validate checks the configuration; the error names every problem.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New(EnvURL+" is not set (the AMQP URI with credentials comes only from the environment)"))
	} else if err := events.ValidateAMQPURI(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("%s %w", EnvURL, err))
	}
	if _, err := bridgeamqp.ParseQueueType(c.QueueType); err != nil {
		errs = append(errs, err)
	}
	if _, err := hub.ParseOverflowPolicy(c.Overflow); err != nil {
		errs = append(errs, err)
	}
	tmpl, err := events.ParseTemplate(c.RoutingKeyTemplate)
	if err != nil {
		errs = append(errs, err)
	} else if tmpl.PlaceholderIndex(c.TenantParam) < 0 {
		errs = append(errs, fmt.Errorf("--tenant-param %q is not a placeholder of %q", c.TenantParam, c.RoutingKeyTemplate))
	}
	if c.BindingKey != "" {
		if err := events.ValidBindingKey(c.BindingKey); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Prefetch < 1 || c.Prefetch > 65535 {
		errs = append(errs, fmt.Errorf("--prefetch %d is outside 1..65535", c.Prefetch))
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("--path %q must start with /", c.Path))
	}
	for name, v := range map[string]int{"--buffer-size": c.BufferSize, "--max-message-bytes": c.MaxMessageBytes,
		"--max-header-bytes": c.MaxHeaderBytes, "--max-filter-values": c.MaxFilterValues,
		"--max-stream-readers": c.MaxStreamReaders} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", name))
		}
	}
	for name, v := range map[string]int{"--replay-size": c.ReplaySize, "--max-connections": c.MaxConnections,
		"--max-connections-per-tenant": c.MaxConnectionsPerTenant, "--max-connections-per-subject": c.MaxConnectionsPerSubject} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	if c.BrokerLostGrace < 0 {
		errs = append(errs, errors.New("--broker-lost-grace must not be negative"))
	}
	for name, v := range map[string]time.Duration{"--heartbeat": c.Heartbeat, "--retry": c.Retry,
		"--drain-timeout": c.DrainTimeout, "--read-header-timeout": c.ReadHeaderTimeout} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format %q: want json or text", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TLSConfig returns the TLS configuration for amqps:// (nil without --amqp-ca-file).
func (c *Config) TLSConfig() (*tls.Config, error) {
	if c.AMQPCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.AMQPCAFile)
	if err != nil {
		return nil, fmt.Errorf("read --amqp-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--amqp-ca-file %q holds no PEM certificate", c.AMQPCAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the structured logger selected by --log-level and --log-format.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}
