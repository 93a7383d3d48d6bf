package tracing

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
)

func TestReconcileSpanNamesTheStreamAndItsOutcome(t *testing.T) {
	recorder := recordSpans(t)
	_, ok := StartReconcile(context.Background(), "apps", "jobs")
	EndReconcile(ok, nil)
	_, failed := StartReconcile(context.Background(), "apps", "broken")
	EndReconcile(failed, errors.New("declare queue \"events.sse\": connection refused"))

	spans := recorder.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	for i, want := range []struct {
		name string
		code codes.Code
	}{{"jobs", codes.Unset}, {"broken", codes.Error}} {
		span := spans[i]
		attrs := map[string]string{}
		for _, kv := range span.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if span.Name() != "reconcile EventStream" || attrs["k8s.namespace.name"] != "apps" || attrs["eventstream.name"] != want.name || span.Status().Code != want.code {
			t.Fatalf("span %q attrs %v status %v, want stream apps/%s status %v", span.Name(), attrs, span.Status(), want.name, want.code)
		}
	}
}

func TestReconcileSpanIsNotRecordedWhenTracingIsOff(t *testing.T) {
	ctx := context.Background()
	got, span := StartReconcile(ctx, "apps", "jobs")
	if got != ctx || span.IsRecording() {
		t.Fatal("StartReconcile recorded a span with tracing off")
	}
	EndReconcile(span, errors.New("x"))
}
