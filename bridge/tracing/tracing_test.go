package tracing

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// recordSpans installs an in-memory tracer provider and the W3C propagator as globals for the
// test, restoring the previous globals afterwards.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	previousProvider, previousPropagator := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	active.Store(true)
	t.Cleanup(func() {
		active.Store(false)
		_ = provider.Shutdown(context.Background())
		otel.SetTracerProvider(previousProvider)
		otel.SetTextMapPropagator(previousPropagator)
	})
	return recorder
}

// endedSpan returns the ended span called name, failing the test when there is none.
func endedSpan(t *testing.T, recorder *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, span := range recorder.Ended() {
		if span.Name() == name {
			return span
		}
	}
	t.Fatalf("no ended span %q among %d", name, len(recorder.Ended()))
	return nil
}

func TestConsumeSpanContinuesThePublishersTrace(t *testing.T) {
	recorder := recordSpans(t)

	publishCtx, publishSpan := StartPublish(context.Background(), "events.topic", "team.42.job.7.status")
	headers := amqp.Table{"timestamp_in_ms": int64(1)}
	Inject(publishCtx, headers)
	publishSpan.End()
	if _, ok := headers["traceparent"].(string); !ok {
		t.Fatalf("Inject wrote no traceparent: %v", headers)
	}

	// Over the wire the header may come back as bytes (clients in other languages).
	headers["traceparent"] = []byte(headers["traceparent"].(string))
	_, consumeSpan := StartConsume(context.Background(), headers, "events.sse", "team.42.job.7.status")
	consumeSpan.SetAttributes(MessageID("m-1"))
	consumeSpan.End()

	publish := endedSpan(t, recorder, "publish events.topic")
	consume := endedSpan(t, recorder, "process events.sse")
	if consume.Parent().TraceID() != publish.SpanContext().TraceID() || consume.Parent().SpanID() != publish.SpanContext().SpanID() {
		t.Fatalf("consume parent = %v/%v, want publish span %v/%v", consume.Parent().TraceID(), consume.Parent().SpanID(),
			publish.SpanContext().TraceID(), publish.SpanContext().SpanID())
	}
	if !consume.Parent().IsRemote() || consume.SpanKind() != trace.SpanKindConsumer || publish.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("kinds/remote wrong: parent remote %v, consume %v, publish %v", consume.Parent().IsRemote(), consume.SpanKind(), publish.SpanKind())
	}
	attrs := map[string]string{}
	for _, kv := range consume.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["messaging.system"] != "rabbitmq" || attrs["messaging.destination.name"] != "events.sse" ||
		attrs["messaging.rabbitmq.destination.routing_key"] != "team.42.job.7.status" || attrs["messaging.message.id"] != "m-1" {
		t.Fatalf("consume attributes = %v", attrs)
	}
}

func TestConsumeWithoutTraceContextStartsANewTrace(t *testing.T) {
	recorder := recordSpans(t)
	for _, headers := range []amqp.Table{nil, {}, {"traceparent": "garbage"}, {"traceparent": 42}} {
		_, span := StartConsume(context.Background(), headers, "q", "k")
		span.End()
	}
	for _, span := range recorder.Ended() {
		if span.Parent().IsValid() {
			t.Fatalf("span %q has parent %v, want a root", span.Name(), span.Parent())
		}
	}
	if len(recorder.Ended()) != 4 {
		t.Fatalf("%d spans, want 4", len(recorder.Ended()))
	}
}

func TestDisabledTracingWritesNothingAndDoesNotAllocate(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	previousProvider, previousPropagator := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(previousProvider); otel.SetTextMapPropagator(previousPropagator) })
	// What a process that never called Setup with tracing on has: OpenTelemetry's no-ops.
	otel.SetTracerProvider(noop.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())

	shutdown, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(noop.TracerProvider); !ok {
		t.Fatalf("Setup without an endpoint installed %T", otel.GetTracerProvider())
	}
	headers := amqp.Table{}
	Inject(context.Background(), headers)
	if len(headers) != 0 {
		t.Fatalf("Inject wrote %v with tracing off", headers)
	}
	incoming := amqp.Table{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	allocs := testing.AllocsPerRun(100, func() {
		_, span := StartConsume(context.Background(), incoming, "events.sse", "team.1.job.2.status")
		span.End()
	})
	if allocs > 0 {
		t.Fatalf("StartConsume allocates %.0f times per message with tracing off, want 0", allocs)
	}
}

func TestEnabledHonoursTheStandardSwitches(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
	if !Enabled() {
		t.Fatal("traces endpoint alone should enable tracing")
	}
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if Enabled() {
		t.Fatal("OTEL_SDK_DISABLED=true should disable tracing")
	}
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, err := Setup(context.Background(), "x"); err == nil {
		t.Fatal("http/json protocol accepted though only grpc and http/protobuf are supported")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	if _, err := Setup(context.Background(), "x"); err == nil {
		t.Fatal("OTEL_TRACES_EXPORTER=zipkin accepted though only otlp is built in")
	}
}

func BenchmarkStartConsumeTracingOff(b *testing.B) {
	otel.SetTracerProvider(noop.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	headers := amqp.Table{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	b.ReportAllocs()
	for b.Loop() {
		_, span := StartConsume(context.Background(), headers, "events.sse", "team.1.job.2.status")
		span.End()
	}
}
