package auth

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsCountOutcomesWithBoundedLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	initial := testutil.CollectAndCount(reg, "eventstream_bridge_auth_total")
	if initial != len(knownReasons)+1 {
		t.Fatalf("%d series before any request, want %d (every reason and allowed)", initial, len(knownReasons)+1)
	}

	m.Observe(nil)
	m.Observe(nil)
	m.Observe(unauthorized(ReasonTokenExpired, "expired"))
	m.Observe(Authorize(Principal{Tenants: []string{"1"}}, "2"))
	// Hostile or buggy inputs must not create series.
	for i := range 100 {
		m.Observe(&Error{Status: 401, Reason: fmt.Sprintf("tenant-%d", i)})
		m.Observe(errors.New("plain error"))
	}

	counter := func(result, reason string) float64 {
		return testutil.ToFloat64(m.outcomes.WithLabelValues(result, reason))
	}
	if got := counter(ResultAllowed, "ok"); got != 2 {
		t.Fatalf("allowed = %v, want 2", got)
	}
	if got := counter(ResultUnauthorized, ReasonTokenExpired); got != 1 {
		t.Fatalf("token_expired = %v, want 1", got)
	}
	if got := counter(ResultForbidden, ReasonTenantForbidden); got != 1 {
		t.Fatalf("tenant_forbidden = %v, want 1", got)
	}
	if got := counter(ResultUnauthorized, ReasonOther); got != 200 {
		t.Fatalf("other = %v, want 200", got)
	}
	if after := testutil.CollectAndCount(reg, "eventstream_bridge_auth_total"); after != initial {
		t.Fatalf("series grew from %d to %d", initial, after)
	}
	var nilMetrics *Metrics
	nilMetrics.Observe(nil) // must not panic
}
