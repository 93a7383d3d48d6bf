// Package tracing connects the bridge's per-message work to the publisher's trace with
// OpenTelemetry, carrying the W3C trace context (traceparent, tracestate) in AMQP headers.
//
// Tracing is on only when the standard OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_SDK_DISABLED is not true). Otherwise Setup
// installs nothing: the global tracer provider and propagator stay OpenTelemetry's no-ops,
// Inject writes no header, and StartPublish and StartConsume return at once with a
// non-recording span and no allocation.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	amqp "github.com/rabbitmq/amqp091-go"
)

// active is set when Setup has installed an exporting tracer provider; until then the span
// functions do nothing.
var active atomic.Bool

// instrumentationName names the tracer of this package.
const instrumentationName = "github.com/eventstream-operator/eventstream-operator/bridge/tracing"

// Attribute keys, from the OpenTelemetry messaging semantic conventions.
const (
	attrSystem     = attribute.Key("messaging.system")
	attrOperation  = attribute.Key("messaging.operation.type")
	attrOpName     = attribute.Key("messaging.operation.name")
	attrDest       = attribute.Key("messaging.destination.name")
	attrRoutingKey = attribute.Key("messaging.rabbitmq.destination.routing_key")
	attrMessageID  = attribute.Key("messaging.message.id")
	// attrOutcome records what the bridge did with a delivery (not a semantic convention).
	attrOutcome = attribute.Key("eventstream.delivery.outcome")
)

// Enabled reports whether the environment asks for trace export.
func Enabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs an OTLP trace exporter, a batching tracer provider and the W3C trace
// context + baggage propagator as OpenTelemetry globals when Enabled, configured by the standard
// OTEL_* environment (protocol, endpoint, headers, timeout, insecure, sampler, OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES; serviceName is the default service.name). The protocol is
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" or
// "http/protobuf" (the default); any other value is an error. OTEL_TRACES_EXPORTER may be unset,
// "otlp" or "none". The returned shutdown flushes pending spans; call it once at exit. When not
// Enabled it installs nothing and shutdown does nothing.
func Setup(ctx context.Context, serviceName string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !Enabled() {
		return noop, nil
	}
	if name := os.Getenv("OTEL_TRACES_EXPORTER"); name != "" && name != "otlp" {
		return noop, fmt.Errorf("OTEL_TRACES_EXPORTER %q is not supported: use otlp or none", name)
	}
	exporter, err := newExporter(ctx, Protocol())
	if err != nil {
		return noop, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", serviceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return noop, fmt.Errorf("build trace resource: %w", err)
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	active.Store(true)
	return func(ctx context.Context) error {
		active.Store(false)
		return provider.Shutdown(ctx)
	}, nil
}

// HeaderCarrier adapts AMQP message headers to OpenTelemetry's TextMapCarrier. Values written
// are strings (AMQP long strings); values read may be strings or byte slices, as clients in
// other languages send either.
type HeaderCarrier amqp.Table

// Get returns the value of key, or "" when absent or not a string.
func (c HeaderCarrier) Get(key string) string {
	switch value := c[key].(type) {
	case string:
		return value
	case []byte:
		return string(value)
	}
	return ""
}

// Set stores value under key.
func (c HeaderCarrier) Set(key, value string) { c[key] = value }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for key := range c {
		keys = append(keys, key)
	}
	return keys
}

// Inject writes the trace context of ctx into headers (traceparent, tracestate, baggage). It has
// the signature of publish.PublisherConfig.HeaderInjector. headers must not be nil. With tracing
// off, or no span in ctx, it writes nothing.
func Inject(ctx context.Context, headers amqp.Table) {
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(headers))
}

// StartPublish starts a producer span for publishing to exchange with routingKey. Use the
// returned context for the publish so Inject carries this span, and end the span after the
// broker's confirm.
func StartPublish(ctx context.Context, exchange, routingKey string) (context.Context, trace.Span) {
	if !active.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return otel.Tracer(instrumentationName).Start(ctx, "publish "+exchange,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrSystem.String("rabbitmq"), attrOperation.String("publish"),
			attrOpName.String("publish"), attrDest.String(exchange), attrRoutingKey.String(routingKey)))
}

// StartConsume starts the consumer span for one delivery from queue. Its parent is the trace
// context the publisher put in headers (nil headers: a new root); ctx supplies cancellation and
// any baggage already present. The caller ends the span when the delivery has been handled
// (acked or rejected) and may record an error on it.
func StartConsume(ctx context.Context, headers amqp.Table, queue, routingKey string) (context.Context, trace.Span) {
	if !active.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if headers != nil {
		ctx = otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(headers))
	}
	tracer := otel.Tracer(instrumentationName)
	return tracer.Start(ctx, "process "+queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrSystem.String("rabbitmq"), attrOperation.String("process"),
			attrOpName.String("process"), attrDest.String(queue), attrRoutingKey.String(routingKey)))
}

// MessageID returns the attribute recording an AMQP message id, for callers that want it on the
// consumer span: span.SetAttributes(tracing.MessageID(d.MessageId)).
func MessageID(id string) attribute.KeyValue { return attrMessageID.String(id) }

// DeliveryObserver returns the consumer's per-delivery hook (it fits bridge/amqp's
// DeliveryObserver): it starts the consume span of a delivery from queue, continuing the
// publisher's trace, and ends it with the outcome the consumer reports ("delivered",
// "duplicate" for a redelivery already handed off, "malformed:<reason>" or "error"; the last
// two mark the span as an error).
// When tracing is off it returns nil, which the consumer treats as no hook at all.
func DeliveryObserver(queue string) func(ctx context.Context, d *amqp.Delivery) (end func(outcome string)) {
	if !active.Load() {
		return nil
	}
	return func(ctx context.Context, d *amqp.Delivery) func(string) {
		_, span := StartConsume(ctx, d.Headers, queue, d.RoutingKey)
		if d.MessageId != "" {
			span.SetAttributes(MessageID(d.MessageId))
		}
		return func(outcome string) {
			span.SetAttributes(attrOutcome.String(outcome))
			if outcome != "delivered" && outcome != "duplicate" {
				span.SetStatus(codes.Error, outcome)
			}
			span.End()
		}
	}
}
