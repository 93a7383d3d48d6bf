package broker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// answerDelay is how long the fake management API takes to answer GetQueue: the histogram
// must observe at least that.
const answerDelay = 30 * time.Millisecond

// TestRequestDurationByOperationAndOutcome: each management API request is observed once in
// the duration histogram (and counted) under its operation and outcome, and the observation
// is the request's duration.
func TestRequestDurationByOperationAndOutcome(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/queues/v/q":
			time.Sleep(answerDelay) // the answer's latency, measured; not synchronisation
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"name":"q","type":"quorum","durable":true,"messages_ready":3}`))
		case "/api/exchanges/v/missing":
			http.Error(w, `{"error":"Object Not Found","reason":"Not Found"}`, http.StatusNotFound)
		default:
			http.Error(w, `{"error":"internal","reason":"boom"}`, http.StatusInternalServerError)
		}
	}))
	defer api.Close()

	m := NewRequestMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	client, err := NewManagementFactory(1000, 1000, m).New(Connection{ManagementURL: api.URL, Username: "u", Password: "p", VHost: "v"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.GetQueue(ctx, "q"); err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	if _, err := client.GetQueue(ctx, "q"); err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	if _, err := client.GetExchange(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetExchange: %v, want ErrNotFound", err)
	}
	if _, err := client.ListPolicies(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("ListPolicies: %v, want ErrUnreachable (a 5xx)", err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	histograms := map[[2]string]*dto.Histogram{}
	counters := map[[2]string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			key := labelPair(metric)
			switch f.GetName() {
			case MetricRequestDuration:
				histograms[key] = metric.GetHistogram()
			case MetricRequests:
				counters[key] = metric.GetCounter().GetValue()
			}
		}
	}
	want := map[[2]string]uint64{
		{"get_queue", "ok"}:              2,
		{"get_exchange", "not_found"}:    1,
		{"list_policies", "unreachable"}: 1,
	}
	if len(histograms) != len(want) {
		t.Errorf("histogram series %v, want exactly %v", keys(histograms), want)
	}
	for key, n := range want {
		h := histograms[key]
		if h.GetSampleCount() != n || counters[key] != float64(n) {
			t.Errorf("%v: %d observations, counter %v; want %d", key, h.GetSampleCount(), counters[key], n)
		}
	}
	if sum := histograms[[2]string{"get_queue", "ok"}].GetSampleSum(); sum < 2*answerDelay.Seconds() {
		t.Errorf("get_queue durations sum to %vs, want at least 2×%v", sum, answerDelay)
	}
	if got := len(histograms[[2]string{"get_queue", "ok"}].GetBucket()); got != len(RequestDurationBuckets) {
		t.Errorf("%d buckets, want %d", got, len(RequestDurationBuckets))
	}
}

func labelPair(m *dto.Metric) [2]string {
	var key [2]string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "operation":
			key[0] = l.GetValue()
		case "outcome":
			key[1] = l.GetValue()
		}
	}
	return key
}

func keys[V any](m map[[2]string]V) [][2]string {
	var out [][2]string
	for k := range m {
		out = append(out, k)
	}
	return out
}
