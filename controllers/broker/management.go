package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// requestTimeout bounds every management API request.
const requestTimeout = 10 * time.Second

// Names of the metrics of management API requests. Their labels are operation (one per
// Client method, e.g. get_queue) and outcome (ok, not_found, unreachable, error): bounded.
const (
	MetricRequests        = "eventstream_operator_broker_requests_total"
	MetricRequestDuration = "eventstream_operator_broker_request_duration_seconds"
)

// RequestDurationBuckets span a local broker's answer (5 ms) to the request timeout (10 s).
var RequestDurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// RequestMetrics are the metrics a ManagementFactory records every request in.
type RequestMetrics struct {
	// Requests counts requests by operation and outcome.
	Requests *prometheus.CounterVec
	// Duration observes each request's duration, by operation and outcome; the wait for the
	// shared rate limiter is not part of it.
	Duration *prometheus.HistogramVec
}

// NewRequestMetrics returns unregistered request metrics.
func NewRequestMetrics() *RequestMetrics {
	return &RequestMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "Requests made to RabbitMQ management APIs, by operation and outcome.",
		}, []string{"operation", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricRequestDuration,
			Help:    "Duration of RabbitMQ management API requests (without the rate limiter's wait), by operation and outcome.",
			Buckets: RequestDurationBuckets,
		}, []string{"operation", "outcome"}),
	}
}

// Collectors returns the metrics to register.
func (m *RequestMetrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Requests, m.Duration}
}

// ManagementFactory makes management API clients that share one rate limiter, so that many
// EventStreams cannot storm a broker, and record their requests.
type ManagementFactory struct {
	limiter   *rate.Limiter
	metrics   *RequestMetrics
	transport *http.Transport
	// importRefused holds the users (management URL and username) whose definitions imports
	// the broker refused for want of the administrator tag: they declare object by object.
	importRefused sync.Map // string -> struct{}
}

// NewManagementFactory returns a factory whose clients together make at most qps requests per
// second (bursts up to burst). metrics, when not nil, records every request.
func NewManagementFactory(qps float64, burst int, metrics *RequestMetrics) *ManagementFactory {
	return &ManagementFactory{
		limiter:   rate.NewLimiter(rate.Limit(qps), burst),
		metrics:   metrics,
		transport: newTransport(nil),
	}
}

// New implements Factory.
func (f *ManagementFactory) New(conn Connection) (Client, error) {
	transport := f.transport
	if len(conn.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(conn.CAPEM) {
			return nil, fmt.Errorf("the TLS CA holds no PEM certificate")
		}
		transport = newTransport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	rh, err := rabbithole.NewTLSClient(conn.ManagementURL, conn.Username, conn.Password, transport)
	if err != nil {
		return nil, fmt.Errorf("management client: %w", err)
	}
	rh.SetTimeout(requestTimeout)
	return &managementClient{rh: rh, vhost: conn.VHost, factory: f,
		http: &http.Client{Transport: transport, Timeout: requestTimeout}}, nil
}

func newTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
}

var queueColumns = url.Values{"columns": {"name,type,durable,arguments,messages,messages_ready,messages_unacknowledged,consumers"}}

type managementClient struct {
	rh      *rabbithole.Client
	vhost   string
	factory *ManagementFactory
	// http makes the requests rabbit-hole does not offer (a virtual host's definitions import).
	http *http.Client
}

// do waits for the shared rate limiter, runs call and classifies its error.
func (c *managementClient) do(ctx context.Context, operation string, call func() error) error {
	if err := c.factory.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("%s: %w", operation, err)
	}
	start := time.Now()
	err := classify(operation, call())
	if m := c.factory.metrics; m != nil {
		outcome := requestOutcome(err)
		m.Requests.WithLabelValues(operation, outcome).Inc()
		m.Duration.WithLabelValues(operation, outcome).Observe(time.Since(start).Seconds())
	}
	return err
}

// requestOutcome is the outcome label of a classified request error.
func requestOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	default:
		return "error"
	}
}

func classify(operation string, err error) error {
	if err == nil {
		return nil
	}
	var answer rabbithole.ErrorResponse
	if errors.As(err, &answer) {
		switch answer.StatusCode {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s: credentials rejected (%d): %w", operation, answer.StatusCode, ErrUnreachable)
		}
		if answer.StatusCode >= 500 {
			return fmt.Errorf("%s: broker answered %d %s: %w", operation, answer.StatusCode, answer.Reason, ErrUnreachable)
		}
		return &BrokerError{Operation: operation, StatusCode: answer.StatusCode, Message: answer.Reason}
	}
	if err.Error() == "Error: API responded with a 401 Unauthorized" {
		return fmt.Errorf("%s: credentials rejected (401): %w", operation, ErrUnreachable)
	}
	// Transport errors: *url.Error, whose text holds the request URL but never the
	// credentials (they travel in a header).
	var urlErr *url.Error
	var netErr net.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) {
		return fmt.Errorf("%s: %v: %w", operation, err, ErrUnreachable)
	}
	// Anything else (an answer that does not decode) is the broker's answer, not its absence.
	return &BrokerError{Operation: operation, Message: err.Error()}
}

func (c *managementClient) GetExchange(ctx context.Context, name string) (*Exchange, error) {
	var info *rabbithole.DetailedExchangeInfo
	err := c.do(ctx, "get_exchange", func() (err error) { info, err = c.rh.GetExchange(c.vhost, name); return err })
	if err != nil {
		return nil, err
	}
	return &Exchange{Name: info.Name, Type: info.Type, Durable: info.Durable}, nil
}

func (c *managementClient) ListExchanges(ctx context.Context) ([]Exchange, error) {
	var infos []rabbithole.ExchangeInfo
	err := c.do(ctx, "list_exchanges", func() (err error) { infos, err = c.rh.ListExchangesIn(c.vhost); return err })
	if err != nil {
		return nil, err
	}
	exchanges := make([]Exchange, 0, len(infos))
	for _, info := range infos {
		exchanges = append(exchanges, Exchange{Name: info.Name, Type: info.Type, Durable: info.Durable})
	}
	return exchanges, nil
}

func (c *managementClient) DeclareExchange(ctx context.Context, name, kind string) error {
	return c.do(ctx, "declare_exchange", func() error {
		return closeBody(c.rh.DeclareExchange(c.vhost, name, rabbithole.ExchangeSettings{Type: kind, Durable: true}))
	})
}

func (c *managementClient) DeleteExchange(ctx context.Context, name string) error {
	return c.do(ctx, "delete_exchange", func() error { return closeBody(c.rh.DeleteExchange(c.vhost, name)) })
}

func (c *managementClient) GetQueue(ctx context.Context, name string) (*Queue, error) {
	var info *rabbithole.DetailedQueueInfo
	// Only the columns used: the full answer's consumer details do not decode for stream
	// consumers on some broker versions, and are large.
	err := c.do(ctx, "get_queue", func() (err error) {
		info, err = c.rh.GetQueueWithParameters(c.vhost, name, queueColumns)
		return err
	})
	if err != nil {
		return nil, err
	}
	q := queueFromInfo(*info)
	return &q, nil
}

func queueFromInfo(info rabbithole.DetailedQueueInfo) Queue {
	return Queue{
		Name: info.Name, Type: info.Type, Durable: info.Durable, Arguments: info.Arguments,
		MessagesReady:          int64(info.MessagesReady),
		MessagesUnacknowledged: int64(info.MessagesUnacknowledged),
		Messages:               int64(info.Messages),
		Consumers:              int64(info.Consumers),
	}
}

func (c *managementClient) ListQueues(ctx context.Context) ([]Queue, error) {
	var infos []rabbithole.QueueInfo
	err := c.do(ctx, "list_queues", func() (err error) {
		infos, err = c.rh.ListQueuesWithParametersIn(c.vhost, queueColumns)
		return err
	})
	if err != nil {
		return nil, err
	}
	queues := make([]Queue, 0, len(infos))
	for _, info := range infos {
		queues = append(queues, queueFromInfo(rabbithole.DetailedQueueInfo(info)))
	}
	return queues, nil
}

func (c *managementClient) DeclareQueue(ctx context.Context, name, queueType string) error {
	return c.do(ctx, "declare_queue", func() error {
		return closeBody(c.rh.DeclareQueue(c.vhost, name, rabbithole.QueueSettings{
			Durable:   true,
			Arguments: map[string]any{"x-queue-type": queueType},
		}))
	})
}

func (c *managementClient) DeleteQueue(ctx context.Context, name string) error {
	return c.do(ctx, "delete_queue", func() error { return closeBody(c.rh.DeleteQueue(c.vhost, name)) })
}

func (c *managementClient) ListQueueBindings(ctx context.Context, queue string) ([]Binding, error) {
	var infos []rabbithole.BindingInfo
	err := c.do(ctx, "list_queue_bindings", func() (err error) { infos, err = c.rh.ListQueueBindings(c.vhost, queue); return err })
	return bindings(infos), err
}

func (c *managementClient) ListExchangeBindings(ctx context.Context, exchange string) ([]Binding, error) {
	var infos []rabbithole.BindingInfo
	err := c.do(ctx, "list_exchange_bindings", func() (err error) {
		infos, err = c.rh.ListExchangeBindingsWithSource(c.vhost, exchange)
		return err
	})
	return bindings(infos), err
}

func (c *managementClient) ListBindings(ctx context.Context) ([]Binding, error) {
	var infos []rabbithole.BindingInfo
	err := c.do(ctx, "list_bindings", func() (err error) { infos, err = c.rh.ListBindingsIn(c.vhost); return err })
	return bindings(infos), err
}

func bindings(infos []rabbithole.BindingInfo) []Binding {
	out := make([]Binding, 0, len(infos))
	for _, b := range infos {
		if b.DestinationType != "queue" {
			continue
		}
		out = append(out, Binding{Source: b.Source, Queue: b.Destination, RoutingKey: b.RoutingKey, PropertiesKey: b.PropertiesKey})
	}
	return out
}

func (c *managementClient) Bind(ctx context.Context, b Binding) error {
	return c.do(ctx, "bind", func() error {
		return closeBody(c.rh.DeclareBinding(c.vhost, rabbithole.BindingInfo{
			Source: b.Source, Destination: b.Queue, DestinationType: "queue", RoutingKey: b.RoutingKey,
		}))
	})
}

func (c *managementClient) Unbind(ctx context.Context, b Binding) error {
	return c.do(ctx, "unbind", func() error {
		return closeBody(c.rh.DeleteBinding(c.vhost, rabbithole.BindingInfo{
			Source: b.Source, Destination: b.Queue, DestinationType: "queue", RoutingKey: b.RoutingKey,
			PropertiesKey: b.PropertiesKey,
		}))
	})
}

func (c *managementClient) GetPolicy(ctx context.Context, name string) (*Policy, error) {
	var p *rabbithole.Policy
	err := c.do(ctx, "get_policy", func() (err error) { p, err = c.rh.GetPolicy(c.vhost, name); return err })
	if err != nil {
		return nil, err
	}
	return policyFromInfo(*p), nil
}

func policyFromInfo(p rabbithole.Policy) *Policy {
	return &Policy{Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: p.Definition}
}

func (c *managementClient) ListPolicies(ctx context.Context) ([]Policy, error) {
	var infos []rabbithole.Policy
	err := c.do(ctx, "list_policies", func() (err error) { infos, err = c.rh.ListPoliciesIn(c.vhost); return err })
	if err != nil {
		return nil, err
	}
	policies := make([]Policy, 0, len(infos))
	for _, p := range infos {
		policies = append(policies, *policyFromInfo(p))
	}
	return policies, nil
}

func (c *managementClient) PutPolicy(ctx context.Context, p Policy) error {
	return c.do(ctx, "put_policy", func() error {
		return closeBody(c.rh.PutPolicy(c.vhost, p.Name, rabbithole.Policy{
			Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: p.Definition,
		}))
	})
}

func (c *managementClient) DeletePolicy(ctx context.Context, name string) error {
	return c.do(ctx, "delete_policy", func() error { return closeBody(c.rh.DeletePolicy(c.vhost, name)) })
}

// definitions is the body of a definitions import (POST /api/definitions/{vhost}), in the
// broker's export format.
type definitions struct {
	Exchanges []definedExchange `json:"exchanges"`
	Queues    []definedQueue    `json:"queues"`
	Bindings  []definedBinding  `json:"bindings"`
	Policies  []definedPolicy   `json:"policies"`
}

type definedExchange struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

type definedQueue struct {
	Name       string         `json:"name"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
}

type definedBinding struct {
	Source          string         `json:"source"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

type definedPolicy struct {
	Name       string         `json:"name"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Priority   int            `json:"priority"`
	Definition map[string]any `json:"definition"`
}

// Declare implements Client. It posts one definitions import; a broker that refuses it to
// a user without the administrator tag (401/403; the operator needs only policymaker) gets the
// objects one request each instead, and so does that user from then on, once that way worked
// (a user whose credentials are wrong fails both ways and is not remembered).
func (c *managementClient) Declare(ctx context.Context, d Declarations) error {
	user := c.rh.Endpoint + "\x00" + c.rh.Username
	if _, refused := c.factory.importRefused.Load(user); refused {
		return c.declareEach(ctx, d)
	}
	payload, err := json.Marshal(importBody(d))
	if err != nil {
		return fmt.Errorf("declare: %w", err)
	}
	var forbidden bool
	err = c.do(ctx, "declare", func() error {
		err := c.importDefinitions(ctx, payload)
		var answer rabbithole.ErrorResponse
		forbidden = errors.As(err, &answer) && (answer.StatusCode == http.StatusUnauthorized || answer.StatusCode == http.StatusForbidden)
		return err
	})
	if !forbidden {
		return err
	}
	if err := c.declareEach(ctx, d); err != nil {
		return err
	}
	c.factory.importRefused.Store(user, struct{}{})
	return nil
}

func importBody(d Declarations) definitions {
	body := definitions{Exchanges: []definedExchange{}, Queues: []definedQueue{}, Bindings: []definedBinding{}, Policies: []definedPolicy{}}
	for _, x := range d.Exchanges {
		body.Exchanges = append(body.Exchanges, definedExchange{Name: x.Name, Type: x.Type, Durable: true, Arguments: map[string]any{}})
	}
	for _, q := range d.Queues {
		body.Queues = append(body.Queues, definedQueue{Name: q.Name, Durable: true, Arguments: map[string]any{"x-queue-type": q.Type}})
	}
	for _, b := range d.Bindings {
		body.Bindings = append(body.Bindings, definedBinding{Source: b.Source, Destination: b.Queue, DestinationType: "queue",
			RoutingKey: b.RoutingKey, Arguments: map[string]any{}})
	}
	for _, p := range d.Policies {
		body.Policies = append(body.Policies, definedPolicy{Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo,
			Priority: p.Priority, Definition: p.Definition})
	}
	return body
}

// declareEach declares d one object per request: exchanges, queues, policies, bindings. Unlike
// the import, an existing queue with other arguments or exchange of another type is a 400.
func (c *managementClient) declareEach(ctx context.Context, d Declarations) error {
	for _, x := range d.Exchanges {
		if err := c.DeclareExchange(ctx, x.Name, x.Type); err != nil {
			return err
		}
	}
	for _, q := range d.Queues {
		if err := c.DeclareQueue(ctx, q.Name, q.Type); err != nil {
			return err
		}
	}
	for _, p := range d.Policies {
		if err := c.PutPolicy(ctx, p); err != nil {
			return err
		}
	}
	for _, b := range d.Bindings {
		if err := c.Bind(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// importDefinitions posts a definitions document to the virtual host. Error answers come back
// as rabbit-hole's ErrorResponse, so that classify reads them like every other answer.
func (c *managementClient) importDefinitions(ctx context.Context, payload []byte) error {
	endpoint := strings.TrimRight(c.rh.Endpoint, "/") + "/api/definitions/" + url.PathEscape(c.vhost)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.rh.Username, c.rh.Password)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
		return nil
	}
	answer := rabbithole.ErrorResponse{StatusCode: res.StatusCode}
	_ = json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&answer)
	return answer
}

func closeBody(res *http.Response, err error) error {
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	return err
}
