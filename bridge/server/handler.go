// Package server is the bridge's HTTP side: the SSE stream handler (query filters, auth,
// tenant scoping, limits, resume, heartbeats, drain) and the operations endpoints.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// Rejection reasons (label values of the connections-rejected metric).
const (
	RejectBadRequest      = "bad_request"
	RejectUnauthenticated = "unauthenticated"
	RejectForbidden       = "forbidden"
	RejectMaxConnections  = "max_connections"
	RejectTenantLimit     = "max_connections_per_tenant"
	RejectSubjectLimit    = "max_connections_per_subject"
	RejectRequestBody     = "request_body"
	RejectDraining        = "draining"
	RejectMethod          = "method_not_allowed"
)

// GapEventName is the SSE event type that tells a client continuity was lost; the
// application refetches from its source of truth (or, with snapshot=1, takes the snapshot
// that follows).
const GapEventName = "gap"

// SnapshotEventName and SnapshotEndEventName are the SSE event types of a snapshot: one
// snapshot event per key, then snapshot-end (docs/bridge.md).
const (
	SnapshotEventName    = "snapshot"
	SnapshotEndEventName = "snapshot-end"
)

// Config configures a Handler.
type Config struct {
	Hub           *hub.Hub
	Template      *events.Template
	TenantParam   string // the placeholder naming the tenant, e.g. team_id
	Authenticator auth.Authenticator
	// AuthMetrics counts authentication/authorization outcomes; nil: not counted.
	AuthMetrics *auth.Metrics
	Metrics     *metrics.Metrics
	Logger      *slog.Logger

	Heartbeat time.Duration // comment interval; default 15s
	Retry     time.Duration // retry: hint; default 3s
	// WriteTimeout bounds one write to a client; a client that cannot take a batch in time is
	// cut off (default 10s).
	WriteTimeout time.Duration

	MaxFilterValues         int // default 16
	MaxConnections          int // 0: unlimited
	MaxConnectionsPerTenant int // 0: unlimited
	// MaxConnectionsPerSubject caps the streams of one caller (auth.Principal.SubjectKey);
	// 0: unlimited.
	MaxConnectionsPerSubject int

	// StreamReader, when set (stream queues), serves a client whose Last-Event-ID is older than
	// the replay window by reading the stream from its offset on; nil: such clients get a gap.
	// It calls expired first when the stream no longer holds from (amqp.Consumer.ReadStream).
	StreamReader func(ctx context.Context, from int64, expired func(), deliver func(hub.Message) error) error
	// MaxStreamReaders bounds concurrent stream readers (default 100); beyond it: a gap.
	MaxStreamReaders int

	// Rand returns a value in [0, 1) for retry jitter; default math/rand/v2.
	Rand func() float64
}

// Handler serves the SSE stream. It is an http.Handler for GET <path>.
type Handler struct {
	cfg         Config
	tenantIndex int
	limiter     *connectionLimiter

	drainOnce     sync.Once
	drain         chan struct{}
	drainDeadline time.Time // set before drain is closed
	active        sync.WaitGroup

	endMu  sync.Mutex
	endNow chan struct{} // closed by EndStreams; streams take the current one when they start

	readers chan struct{} // semaphore of stream readers

	watcherOnce sync.Once
	watcher     closeWatcher // notices detached clients hanging up; made at the first

	wakers streamWakers // open streams' writers, woken by Drain and EndStreams

	poolOnce sync.Once
	pool     *writerPool // runs the detached streams (writers.go); made at the first
	// writeSlots bounds the goroutines giving bytes to the kernel with blocking writes at once
	// (connSink.writeFair): GOMAXPROCS.
	writeSlots chan struct{}
}

// NewHandler validates cfg and returns a handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Hub == nil || cfg.Template == nil || cfg.Authenticator == nil || cfg.Metrics == nil || cfg.Logger == nil {
		return nil, errors.New("server: Hub, Template, Authenticator, Metrics and Logger are required")
	}
	idx := cfg.Template.PlaceholderIndex(cfg.TenantParam)
	if idx < 0 {
		return nil, fmt.Errorf("tenant parameter %q is not a placeholder of routing-key template %q", cfg.TenantParam, cfg.Template)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 3 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxFilterValues <= 0 {
		cfg.MaxFilterValues = 16
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.MaxStreamReaders <= 0 {
		cfg.MaxStreamReaders = 100
	}
	return &Handler{
		cfg:         cfg,
		tenantIndex: idx,
		limiter:     newConnectionLimiter(cfg.MaxConnections, cfg.MaxConnectionsPerTenant, cfg.MaxConnectionsPerSubject),
		drain:       make(chan struct{}),
		endNow:      make(chan struct{}),
		readers:     make(chan struct{}, cfg.MaxStreamReaders),
		writeSlots:  make(chan struct{}, runtime.GOMAXPROCS(0)),
	}, nil
}

// Drain makes every open stream write what was already handed to it (until ctx's deadline),
// then a jittered retry: hint, and end; every new request gets the hint at once. It returns when
// all streams ended or ctx is done.
func (h *Handler) Drain(ctx context.Context) error {
	h.drainOnce.Do(func() {
		h.drainDeadline, _ = ctx.Deadline()
		close(h.drain)
		h.wakers.wakeAll()
	})
	done := make(chan struct{})
	go func() {
		h.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain SSE streams: %w", ctx.Err())
	}
}

// EndStreams ends the streams open now, after writing what was already handed to them, with
// comment and a short jittered retry: hint (in [Retry/6, Retry/2)), so their clients
// reconnect soon, through the Service, to a ready replica and resume with Last-Event-ID. New
// streams are served as usual. The bridge calls it when a stream replica lost the broker.
func (h *Handler) EndStreams(comment string) {
	h.endMu.Lock()
	close(h.endNow)
	h.endNow = make(chan struct{})
	h.endMu.Unlock()
	h.wakers.wakeAll()
	h.cfg.Logger.Info("ending open streams", "reason", comment)
}

func (h *Handler) endSignal() <-chan struct{} {
	h.endMu.Lock()
	defer h.endMu.Unlock()
	return h.endNow
}

func (h *Handler) draining() bool {
	select {
	case <-h.drain:
		return true
	default:
		return false
	}
}

// jitteredRetry spreads reconnects over [Retry, 3·Retry) so a restart does not cause a storm.
func (h *Handler) jitteredRetry() time.Duration {
	return h.cfg.Retry + time.Duration(h.cfg.Rand()*float64(2*h.cfg.Retry))
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, status int, reason, message string) {
	h.cfg.Metrics.Rejected.WithLabelValues(reason).Inc()
	h.cfg.Logger.Debug("stream refused", "path", r.URL.Path, "status", status, "reason", reason)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(message + "\n"))
}

// ServeHTTP handles one stream: parse → authenticate → authorize → limit → subscribe → stream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.reject(w, r, http.StatusMethodNotAllowed, RejectMethod, "method not allowed; use GET")
		return
	}
	sub, err := ParseQuery(r.URL.RawQuery, h.cfg.Template, h.cfg.MaxFilterValues)
	if err != nil {
		h.reject(w, r, http.StatusBadRequest, RejectBadRequest, err.Error())
		return
	}
	principal, err := h.cfg.Authenticator.Authenticate(r)
	if err != nil {
		h.cfg.AuthMetrics.Observe(err)
		var authErr *auth.Error
		if errors.As(err, &authErr) {
			reason := RejectUnauthenticated
			if authErr.Status == http.StatusForbidden {
				reason = RejectForbidden
			}
			h.reject(w, r, authErr.Status, reason, authErr.Message)
			return
		}
		h.cfg.Logger.Error("authenticator failed", "path", r.URL.Path, "error", err)
		h.reject(w, r, http.StatusUnauthorized, RejectUnauthenticated, "authentication failed")
		return
	}
	tenants, ok := h.scopeTenants(sub.Filter, principal)
	if !ok {
		h.cfg.AuthMetrics.Observe(auth.TenantForbidden())
		h.reject(w, r, http.StatusForbidden, RejectForbidden, "forbidden: the credentials do not grant the requested "+h.cfg.TenantParam)
		return
	}
	h.cfg.AuthMetrics.Observe(nil)
	if sub.Snapshot && !h.cfg.Hub.HasSnapshots() {
		h.reject(w, r, http.StatusBadRequest, RejectBadRequest, "query parameter snapshot: snapshots are not enabled on this bridge (--snapshot-max-keys)")
		return
	}
	if h.draining() {
		h.refuseForNow(w, r, RejectDraining, "draining")
		return
	}
	// Every limit is temporary: the browser is told to come back later (possibly to another
	// replica) and does so by itself until a slot is free; a status would stop it for good.
	switch h.limiter.acquire(tenants, principal.SubjectKey) {
	case limitTotal:
		h.refuseForNow(w, r, RejectMaxConnections, "server full")
		return
	case limitSubject:
		h.refuseForNow(w, r, RejectSubjectLimit, "too many open streams for this subject; retry later")
		return
	case limitTenant:
		h.refuseForNow(w, r, RejectTenantLimit, "too many open streams for this "+h.cfg.TenantParam+"; retry later")
		return
	}
	h.active.Add(1)
	cursorID := r.Header.Get("Last-Event-ID")
	if cursorID == "" {
		cursorID = sub.LastEventID
	}
	st := streamStart{filter: sub.Filter, snapshot: sub.Snapshot, tenants: tenants, subject: principal.SubjectKey, cursorID: cursorID, path: r.URL.Path, expiresAt: principal.ExpiresAt}
	// An HTTP/1 stream leaves net/http once admitted (detached.go): it continues in a fresh
	// goroutine with a small stack, and net/http's goroutine, buffers and request are released.
	if sink, ok := h.detach(w, r); ok {
		go h.serve(sink, st)
		return
	}
	// Admitted: the request phase's read deadline (http.Server.ReadTimeout) no longer applies;
	// left in place it would end the stream (net/http cancels the request on a read error).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	writeStreamHeaders(w)
	h.serve(&responseSink{w: w, rc: rc, ctx: r.Context(), timeout: h.cfg.WriteTimeout}, st)
}

// streamStart is what an admitted stream needs from its request.
type streamStart struct {
	filter    hub.Filter
	snapshot  bool // send the snapshot first and after every gap
	tenants   []string
	subject   string // the limiter's subject key
	cursorID  string
	path      string
	expiresAt time.Time
}

func (h *Handler) acquireReader() bool {
	select {
	case h.readers <- struct{}{}:
		return true
	default:
		return false
	}
}

func (h *Handler) releaseReader() { <-h.readers }

// readStream fills s from the stream after offset cursor until ctx ends. If the stream no
// longer holds the offset after the cursor (retention), the client gets a gap first. When the
// reader fails (broker gone), s is closed: the stream ends with retry: and the client resumes.
func (h *Handler) readStream(ctx context.Context, path string, s *hub.Subscriber, cursor int64) {
	expired := func() { s.MarkGap("expired") }
	err := h.cfg.StreamReader(ctx, cursor+1, expired, func(m hub.Message) error {
		if !s.Filter().Matches(m.Values) {
			return nil
		}
		return s.OfferWait(ctx, hub.StreamFrame(m))
	})
	if ctx.Err() == nil {
		h.cfg.Logger.Warn("stream reader ended", "path", path, "error", err)
		s.Close()
	}
}

// scopeTenants applies tenant authorization to filter (in place) and returns the tenants the
// stream covers, for the per-tenant limit. With the tenant parameter given, every value must
// be readable; without it, a caller limited to some tenants gets exactly those.
func (h *Handler) scopeTenants(filter hub.Filter, p auth.Principal) ([]string, bool) {
	requested := filter[h.tenantIndex]
	if requested != nil {
		for _, t := range requested {
			if !p.MayRead(t) {
				return nil, false
			}
		}
		return requested, true
	}
	if p.AllTenants {
		return nil, true
	}
	if len(p.Tenants) == 0 {
		return nil, false
	}
	scoped := slices.Clone(p.Tenants)
	filter[h.tenantIndex] = scoped
	return scoped, true
}

func writeStreamHeaders(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache, no-transform")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
}

// refuseForNow counts a refusal that is temporary (draining, a connection limit) and answers
// it with retryAndEnd.
func (h *Handler) refuseForNow(w http.ResponseWriter, r *http.Request, reason, comment string) {
	h.cfg.Metrics.Rejected.WithLabelValues(reason).Inc()
	h.cfg.Logger.Debug("stream refused for now", "path", r.URL.Path, "reason", reason)
	h.retryAndEnd(w, comment)
}

// retryAndEnd answers with an empty stream holding a comment and a jittered retry: hint: the
// browser reconnects later, by itself, instead of giving up.
func (h *Handler) retryAndEnd(w http.ResponseWriter, comment string) {
	writeStreamHeaders(w)
	b := sse.AppendComment(nil, comment)
	b = sse.AppendRetry(b, h.jitteredRetry().Milliseconds())
	_, _ = w.Write(b)
	_ = http.NewResponseController(w).Flush()
}

// appendGap encodes a gap event: event type "gap", no id (the client keeps its last id), and
// JSON data {"reason":…,"dropped":n}.
func appendGap(dst []byte, g *hub.Gap) []byte {
	data := make([]byte, 0, 48)
	data = append(data, `{"reason":"`...)
	data = append(data, g.Reason...)
	data = append(data, `","dropped":`...)
	data = strconv.AppendInt(data, int64(g.Dropped), 10)
	data = append(data, '}')
	return sse.AppendEvent(dst, sse.Event{Name: GapEventName, Data: data})
}
