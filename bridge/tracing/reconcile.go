package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of the operator's reconcile span, after the Kubernetes semantic conventions.
const (
	attrNamespace = attribute.Key("k8s.namespace.name")
	attrResource  = attribute.Key("eventstream.name")
)

// StartReconcile starts the operator's span for one reconcile of the EventStream
// namespace/name. The caller ends it with EndReconcile. With tracing off it returns ctx and a
// non-recording span at once.
func StartReconcile(ctx context.Context, namespace, name string) (context.Context, trace.Span) {
	if !active.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return otel.Tracer(instrumentationName).Start(ctx, "reconcile EventStream",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrNamespace.String(namespace), attrResource.String(name)))
}

// EndReconcile ends a span from StartReconcile, marking it as an error when err is not nil.
// The error's text is recorded, the same text controller-runtime logs for a failed reconcile.
func EndReconcile(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
