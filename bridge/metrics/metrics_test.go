package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricNamesAreTheContract: the operator scrapes these exact names.
func TestMetricNamesAreTheContract(t *testing.T) {
	m := New()
	m.Latency.Observe(0.01)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range families {
		got[f.GetName()] = f.GetType().String()
	}
	for name, typ := range map[string]string{
		"eventstream_bridge_clients":                             "GAUGE",
		"eventstream_bridge_events_consumed_total":               "COUNTER",
		"eventstream_bridge_events_delivered_total":              "COUNTER",
		"eventstream_bridge_events_dropped_total":                "COUNTER",
		"eventstream_bridge_messages_malformed_total":            "COUNTER",
		"eventstream_bridge_broker_reconnects_total":             "COUNTER",
		"eventstream_bridge_consumer_lag_messages":               "GAUGE",
		"eventstream_bridge_delivery_latency_seconds":            "HISTOGRAM",
		"eventstream_bridge_broker_connected":                    "GAUGE",
		"eventstream_bridge_events_redelivered_total":            "COUNTER",
		"eventstream_bridge_events_redelivered_suppressed_total": "COUNTER",
		"eventstream_bridge_slow_client_disconnects_total":       "COUNTER",
	} {
		if got[name] != typ {
			t.Errorf("%s: type %q, want %s", name, got[name], typ)
		}
	}
	// Vectors with no observation yet are still exposed for their known reasons, so a scrape
	// sees 0 instead of nothing.
	// A slow client ended by the disconnect policy is counted apart: its buffered events are
	// not lost (it resumes them with Last-Event-ID).
	if n := testutil.CollectAndCount(m.Dropped); n != 2 {
		t.Errorf("dropped series = %d, want 2 (overflow, superseded)", n)
	}
	if n := testutil.CollectAndCount(m.Malformed); n != 3 {
		t.Errorf("malformed series = %d, want 3", n)
	}
	m.Rejected.WithLabelValues("max_connections").Inc()
	if err := testutil.CollectAndCompare(m.Rejected, strings.NewReader(`
# HELP eventstream_bridge_connections_rejected_total SSE connections refused, by reason.
# TYPE eventstream_bridge_connections_rejected_total counter
eventstream_bridge_connections_rejected_total{reason="max_connections"} 1
`)); err != nil {
		t.Error(err)
	}
	// Two bridges in one process: separate registries, no duplicate-registration panic.
	other := New()
	other.Clients.Inc()
	if testutil.ToFloat64(m.Clients) != 0 {
		t.Error("registries share state")
	}
}
