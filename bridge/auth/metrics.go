package auth

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of the eventstream_bridge_auth_total metric.
const (
	ResultAllowed      = "allowed"
	ResultUnauthorized = "unauthorized" // answered 401
	ResultForbidden    = "forbidden"    // answered 403
)

// Metrics counts authentication and authorization outcomes in
// eventstream_bridge_auth_total{result,reason}. Both labels come from fixed sets (results above,
// reasons in reasons.go, "ok" for allowed), so the metric has at most a few dozen series
// whatever clients send; tenant ids and subjects are deliberately not labels.
type Metrics struct {
	outcomes *prometheus.CounterVec
}

// NewMetrics registers the auth metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventstream_bridge_auth_total",
		Help: "Stream requests by authentication/authorization outcome (result) and reason.",
	}, []string{"result", "reason"})
	if err := reg.Register(outcomes); err != nil {
		return nil, err
	}
	outcomes.WithLabelValues(ResultAllowed, "ok")
	for reason := range knownReasons {
		outcomes.WithLabelValues(resultOf(reason), reason)
	}
	return &Metrics{outcomes: outcomes}, nil
}

// Observe counts the decision taken on one request: nil for allowed, else the error returned by
// Authenticate or Authorize. A nil *Metrics counts nothing.
func (m *Metrics) Observe(err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.outcomes.WithLabelValues(ResultAllowed, "ok").Inc()
		return
	}
	reason := ReasonOther
	var authErr *Error
	if errors.As(err, &authErr) && knownReasons[authErr.Reason] {
		reason = authErr.Reason
	}
	m.outcomes.WithLabelValues(resultOf(reason), reason).Inc()
}

func resultOf(reason string) string {
	if statusOf(reason) == http.StatusForbidden {
		return ResultForbidden
	}
	return ResultUnauthorized
}

func statusOf(reason string) int {
	switch reason {
	case ReasonMissingScope, ReasonNoTenants, ReasonTenantForbidden:
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}
