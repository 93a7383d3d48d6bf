package tracing

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// OTLP protocols, as spelled in OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Protocol returns the OTLP protocol the environment asks for traces:
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf (the
// specification's default).
func Protocol() string {
	if protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); protocol != "" {
		return protocol
	}
	if protocol := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); protocol != "" {
		return protocol
	}
	return ProtocolHTTP
}

// newExporter creates the OTLP span exporter for protocol. Both exporters read the endpoint,
// headers, timeout, compression, TLS and insecure settings from the OTEL_EXPORTER_OTLP_*
// environment themselves. Creating one does not connect: a collector that is down costs
// dropped spans (logged by the SDK), never a failed start.
func newExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	var (
		exporter sdktrace.SpanExporter
		err      error
	)
	switch protocol {
	case ProtocolGRPC:
		exporter, err = otlptracegrpc.New(ctx)
	case ProtocolHTTP:
		exporter, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTLP protocol %q is not supported: use %s (usually port 4317) or %s (usually port 4318)",
			protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP %s trace exporter: %w", protocol, err)
	}
	return exporter, nil
}
