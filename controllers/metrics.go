package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// brokerRequests counts management API requests of all EventStreams, on the operator's
// /metrics endpoint.
var brokerRequests = broker.RequestsCounter()

func init() {
	metrics.Registry.MustRegister(brokerRequests)
}
