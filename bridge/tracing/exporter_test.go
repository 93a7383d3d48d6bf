package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// collectedSpan is what a test collector saw of one exported span.
type collectedSpan struct {
	serviceName, spanName string
}

// received flattens an OTLP export request into its spans with their resource's service.name.
func received(request *collectortrace.ExportTraceServiceRequest) []collectedSpan {
	var spans []collectedSpan
	for _, resourceSpans := range request.GetResourceSpans() {
		service := ""
		for _, attr := range resourceSpans.GetResource().GetAttributes() {
			if attr.GetKey() == "service.name" {
				service = attr.GetValue().GetStringValue()
			}
		}
		for _, scopeSpans := range resourceSpans.GetScopeSpans() {
			for _, span := range scopeSpans.GetSpans() {
				spans = append(spans, collectedSpan{serviceName: service, spanName: span.GetName()})
			}
		}
	}
	return spans
}

// grpcCollector implements the OTLP TraceService and hands every exported span to a channel.
type grpcCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	spans chan collectedSpan
}

func (c *grpcCollector) Export(_ context.Context, request *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, span := range received(request) {
		c.spans <- span
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// exportOneSpan runs Setup with the environment the test has set, ends one consume span and
// flushes, restoring the OpenTelemetry globals afterwards.
func exportOneSpan(t *testing.T) {
	t.Helper()
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	previousProvider, previousPropagator := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(previousProvider); otel.SetTextMapPropagator(previousPropagator) })

	shutdown, err := Setup(context.Background(), "eventstream-bridge-test")
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := StartConsume(context.Background(), amqp.Table{}, "events.sse", "team.1.job.2.status")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown (flush to the collector): %v", err)
	}
}

// expectSpan waits for the consume span with the service name Setup was given.
func expectSpan(t *testing.T, spans <-chan collectedSpan) {
	t.Helper()
	want := collectedSpan{serviceName: "eventstream-bridge-test", spanName: "process events.sse"}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-spans:
			if got == want {
				return
			}
			t.Logf("collector received another span: %+v", got)
		case <-deadline:
			t.Fatalf("the collector did not receive %+v within 30s", want)
		}
	}
}

func TestSetupExportsOverOTLPGRPC(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := &grpcCollector{spans: make(chan collectedSpan, 16)}
	server := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(server, collector)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+listener.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	exportOneSpan(t)
	expectSpan(t, collector.spans)
}

func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	spans := make(chan collectedSpan, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		request := &collectortrace.ExportTraceServiceRequest{}
		if err != nil || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" ||
			proto.Unmarshal(body, request) != nil {
			http.Error(w, "not an OTLP/HTTP trace export", http.StatusBadRequest)
			return
		}
		for _, span := range received(request) {
			spans <- span
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		response, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(response)
	}))
	defer collector.Close()

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") // the traces-specific protocol wins
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.URL+"/v1/traces")
	exportOneSpan(t)
	expectSpan(t, spans)
}

func TestProtocolDefaultsToHTTPProtobuf(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
	if got := Protocol(); got != ProtocolHTTP {
		t.Fatalf("Protocol() = %q with nothing set, want %q", got, ProtocolHTTP)
	}
}
