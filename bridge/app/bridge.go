package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	bridgeamqp "github.com/eventstream-operator/eventstream-operator/bridge/amqp"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/bridge/server"
	"github.com/eventstream-operator/eventstream-operator/bridge/snapshot"
)

// opsWriteTimeout bounds writing one response of the operations listener (a /metrics
// scrape), longer than any scrape timeout.
const opsWriteTimeout = 30 * time.Second

// Bridge is a running bridge: consumer, hub, SSE server and operations server.
type Bridge struct {
	cfg      *Config
	log      *slog.Logger
	Metrics  *metrics.Metrics
	Hub      *hub.Hub
	Consumer *bridgeamqp.Consumer
	Handler  *server.Handler

	sseListener, opsListener net.Listener
	sseServer, opsServer     *http.Server

	draining     atomic.Bool
	stopConsumer context.CancelFunc
	consumerDone chan struct{}
	serveErr     chan error
	shutdownOnce sync.Once
	shutdownErr  error
}

// Start validates cfg, binds both listeners and starts consuming and serving. It does not
// wait for the broker: /readyz says when the bridge is consuming.
func Start(cfg *Config, log *slog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("no authenticator configured")
	}
	tmpl, _ := events.ParseTemplate(cfg.RoutingKeyTemplate)
	queueType, _ := bridgeamqp.ParseQueueType(cfg.QueueType)
	overflow, _ := hub.ParseOverflowPolicy(cfg.Overflow)
	tlsConfig, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}

	m := cfg.Metrics
	if m == nil {
		m = metrics.New()
	}
	m.ConnectionLimit.Set(float64(cfg.MaxConnections))
	ids := hub.EpochIDs
	if queueType == bridgeamqp.Stream {
		ids = hub.OffsetIDs
	}
	var (
		store    *snapshot.Store
		consumer *bridgeamqp.Consumer // set below; the stream store's Partial reads it
	)
	if cfg.SnapshotMaxKeys > 0 {
		store = snapshot.New(snapshot.Config{
			MaxKeys:     cfg.SnapshotMaxKeys,
			MaxBytes:    cfg.SnapshotMaxBytes,
			MaxAge:      cfg.SnapshotMaxAge,
			TenantIndex: tmpl.PlaceholderIndex(cfg.TenantParam),
			Partial:     snapshotPartial(queueType, cfg.SnapshotMaxAge, time.Now(), func() bool { return consumer.StartupReadDone() }),
		})
		m.ObserveSnapshot(store.Stats)
	}
	h := hub.New(hub.Config{
		LastValues:   lastValues(store),
		Placeholders: len(tmpl.Placeholders()),
		IDs:          ids,
		BufferSize:   cfg.BufferSize,
		Overflow:     overflow,
		ReplaySize:   cfg.ReplaySize,
		OnDrop: func(reason string, n int) {
			m.Dropped.WithLabelValues(reason).Add(float64(n))
		},
		OnDisconnect: m.SlowClientDisconnects.Inc,
	})
	consumer = bridgeamqp.New(bridgeamqp.Config{
		URL:                cfg.URL,
		TLS:                tlsConfig,
		Exchange:           cfg.Exchange,
		Queue:              cfg.Queue,
		QueueType:          queueType,
		BindingKey:         cfg.BindingKey,
		DeclareTopology:    cfg.DeclareTopology,
		DeadLetterExchange: cfg.DeadLetterExch,
		Prefetch:           cfg.Prefetch,
		MaxMessageBytes:    cfg.MaxMessageBytes,
		Template:           tmpl,
		StreamReplay:       cfg.ReplaySize,
		StreamFromFirst:    store != nil,
		LagInterval:        cfg.LagInterval,
		Backoff:            cfg.Backoff,
		Observe:            cfg.Observe,
		Logger:             log,
		Metrics:            m,
	}, h)
	var streamReader func(context.Context, int64, func(), func(hub.Message) error) error
	if queueType == bridgeamqp.Stream {
		streamReader = consumer.ReadStream
	}
	handler, err := server.NewHandler(server.Config{
		StreamReader:             streamReader,
		MaxStreamReaders:         cfg.MaxStreamReaders,
		Hub:                      h,
		Template:                 tmpl,
		TenantParam:              cfg.TenantParam,
		Authenticator:            cfg.Authenticator,
		AuthMetrics:              cfg.AuthMetrics,
		Metrics:                  m,
		Logger:                   log,
		Heartbeat:                cfg.Heartbeat,
		Retry:                    cfg.Retry,
		MaxFilterValues:          cfg.MaxFilterValues,
		MaxConnections:           cfg.MaxConnections,
		MaxConnectionsPerTenant:  cfg.MaxConnectionsPerTenant,
		MaxConnectionsPerSubject: cfg.MaxConnectionsPerSubject,
	})
	if err != nil {
		return nil, err
	}

	b := &Bridge{cfg: cfg, log: log, Metrics: m, Hub: h, Consumer: consumer, Handler: handler,
		consumerDone: make(chan struct{}), serveErr: make(chan error, 2)}

	var sseHandler http.Handler = handler
	if cfg.Middleware != nil {
		sseHandler = cfg.Middleware(sseHandler)
	}
	// The request phase — headers, and a body no request here may have — is bounded by
	// --read-header-timeout on both listeners, so no client holds a socket without sending a
	// complete request. An admitted stream clears the deadline (server.Handler) and lives on.
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug) // client-caused noise
	b.sseServer = &http.Server{
		Handler: server.RefuseRequestBodies(server.ExactPath(cfg.Path, sseHandler), func(*http.Request) {
			m.Rejected.WithLabelValues(server.RejectRequestBody).Inc()
		}),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * cfg.ReadHeaderTimeout,
		ErrorLog:          errorLog,
	}
	b.opsServer = &http.Server{
		Handler:           server.RefuseRequestBodies(server.OpsHandler(m, b.Ready), nil),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadHeaderTimeout,
		WriteTimeout:      opsWriteTimeout,
		IdleTimeout:       2 * cfg.ReadHeaderTimeout,
		ErrorLog:          errorLog,
	}
	if b.sseListener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if b.opsListener, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
		_ = b.sseListener.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.MetricsListen, err)
	}
	b.sseListener = server.LogAcceptErrors(b.sseListener, "sse", log)
	b.opsListener = server.LogAcceptErrors(b.opsListener, "ops", log)

	consumerCtx, stop := context.WithCancel(context.Background())
	b.stopConsumer = stop
	go func() {
		defer close(b.consumerDone)
		_ = consumer.Run(consumerCtx)
	}()
	if queueType == bridgeamqp.Stream && cfg.BrokerLostGrace > 0 {
		go b.endStreamsWhenCutOff(consumerCtx, cfg.BrokerLostGrace, brokerWatchInterval)
	}
	go b.serve(b.sseServer, b.sseListener)
	go b.serve(b.opsServer, b.opsListener)
	log.Info("bridge started", "listen", b.sseListener.Addr().String(), "metricsListen", b.opsListener.Addr().String(),
		"path", cfg.Path, "queue", cfg.Queue, "queueType", cfg.QueueType, "template", cfg.RoutingKeyTemplate,
		"overflow", cfg.Overflow, "epoch", h.Epoch(), "snapshotMaxKeys", cfg.SnapshotMaxKeys)
	return b, nil
}

// lastValues returns store as the hub's LastValues, or nil (no snapshots) without one: a nil
// *Store in the interface would not be nil.
func lastValues(store *snapshot.Store) hub.LastValues {
	if store == nil {
		return nil
	}
	return store
}

// snapshotPartial says when the snapshot may lack keys. Stream: until the consumer has read the
// stream from its first retained message up to the tail it found at start-up (the store is
// rebuilt from the stream, so every replica then serves the same snapshot). Classic and
// quorum: the store lives in this process only, so for maxAge after the start, when every key
// the previous process could still have served has aged out; with no age bound, always.
func snapshotPartial(queueType bridgeamqp.QueueType, maxAge time.Duration, started time.Time, streamRead func() bool) func() bool {
	if queueType == bridgeamqp.Stream {
		return func() bool { return !streamRead() }
	}
	if maxAge <= 0 {
		return func() bool { return true }
	}
	complete := started.Add(maxAge)
	return func() bool { return time.Now().Before(complete) }
}

func (b *Bridge) serve(s *http.Server, l net.Listener) {
	if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		b.serveErr <- err
	}
}

// Ready is true while the consumer is consuming and the bridge is not draining.
func (b *Bridge) Ready() bool { return !b.draining.Load() && b.Consumer.Ready() }

// SSEAddr is the SSE listener's address.
func (b *Bridge) SSEAddr() string { return b.sseListener.Addr().String() }

// OpsAddr is the operations listener's address.
func (b *Bridge) OpsAddr() string { return b.opsListener.Addr().String() }

// Failed delivers an error when a listener fails while serving.
func (b *Bridge) Failed() <-chan error { return b.serveErr }

// Shutdown drains gracefully, in this order:
//  1. readiness off, so no new traffic is routed here;
//  2. the consumer cancels and closes its channel: deliveries not yet acked return to the queue
//     for the next bridge, and nothing more is acked on behalf of clients about to leave;
//  3. every stream writes what was already handed to it, then a jittered retry: hint, and ends
//     (clients reconnect, spread out, to another replica or the restarted pod);
//  4. the SSE server and then the operations server stop.
//
// ctx bounds the whole sequence; Shutdown is idempotent.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.shutdownOnce.Do(func() {
		b.draining.Store(true)
		b.log.Info("draining: readiness off, stopping the consumer, ending streams with a retry hint")
		var errs []error
		b.stopConsumer()
		select {
		case <-b.consumerDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stop consumer: %w", ctx.Err()))
		}
		if err := b.Handler.Drain(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := b.sseServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop SSE server: %w", err))
			_ = b.sseServer.Close()
		}
		if err := b.opsServer.Shutdown(ctx); err != nil {
			_ = b.opsServer.Close()
		}
		b.shutdownErr = errors.Join(errs...)
		b.log.Info("bridge stopped", "error", b.shutdownErr)
	})
	return b.shutdownErr
}
