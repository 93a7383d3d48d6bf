package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// Operator metric names. Per-stream gauges carry namespace and name (bounded by the number of
// EventStreams) and are removed with the stream; nothing else carries a stream's identity.
const (
	MetricStreamCondition    = "eventstream_operator_stream_condition"
	MetricStreamDeadLettered = "eventstream_operator_stream_dead_lettered_messages"
	MetricStreamQueueReady   = "eventstream_operator_stream_queue_messages_ready"
	// MetricReconcileErrors counts failed reconcile steps by reason, the condition reason the
	// step reported (a constant of api/v1alpha1, e.g. BrokerUnreachable): bounded.
	MetricReconcileErrors = "eventstream_operator_reconcile_errors_total"
	// MetricBrokerRequests and MetricBrokerRequestDuration (a histogram: _bucket, _sum and
	// _count series) record management API requests by operation and outcome.
	MetricBrokerRequests        = broker.MetricRequests
	MetricBrokerRequestDuration = broker.MetricRequestDuration
)

var (
	// brokerRequests records management API requests of all EventStreams.
	brokerRequests = broker.NewRequestMetrics()

	reconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricReconcileErrors,
		Help: "Failed reconcile steps of EventStreams, by the condition reason of the failure.",
	}, []string{"reason"})

	streamCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricStreamCondition,
		Help: "1 when the EventStream's condition (Ready, TopologyReady, BridgeReady) is True, else 0.",
	}, []string{"namespace", "name", "condition"})
	streamDeadLettered = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricStreamDeadLettered,
		Help: "Messages in the EventStream's dead-letter queue, as last read from the broker.",
	}, []string{"namespace", "name"})
	streamQueueReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricStreamQueueReady,
		Help: "Messages waiting in the EventStream's queue, as last read from the broker.",
	}, []string{"namespace", "name"})
)

// reconcileErrorReasons are the reasons a reconcile step fails with. Their series exist from
// the start at 0, so that dashboards and rate() show "no errors" rather than no data on an
// operator that never failed. TestReconcileErrorReasonsAreListed checks the list against the
// reasons the steps report.
var reconcileErrorReasons = []string{
	esv1.ReasonSecretNotFound, esv1.ReasonSecretInvalid, esv1.ReasonBrokerUnreachable,
	esv1.ReasonBrokerError, esv1.ReasonQueueArgumentsConflict, esv1.ReasonQueueClaimed,
	esv1.ReasonWorkloadError,
}

func init() {
	metrics.Registry.MustRegister(brokerRequests.Collectors()...)
	metrics.Registry.MustRegister(reconcileErrors, streamCondition, streamDeadLettered, streamQueueReady)
	for _, reason := range reconcileErrorReasons {
		reconcileErrors.WithLabelValues(reason)
	}
}

// exportedConditions are the conditions exported as streamCondition.
var exportedConditions = []string{esv1.ConditionReady, esv1.ConditionTopologyReady, esv1.ConditionBridgeReady}

// recordStreamMetrics sets the per-stream gauges from the stream's status.
func recordStreamMetrics(es *esv1.EventStream) {
	for _, c := range exportedConditions {
		v := 0.0
		if meta.IsStatusConditionTrue(es.Status.Conditions, c) {
			v = 1
		}
		streamCondition.WithLabelValues(es.Namespace, es.Name, c).Set(v)
	}
	if q := es.Status.Queue; q != nil {
		streamDeadLettered.WithLabelValues(es.Namespace, es.Name).Set(float64(q.DeadLettered))
		streamQueueReady.WithLabelValues(es.Namespace, es.Name).Set(float64(q.MessagesReady))
	}
}

// forgetStreamMetrics removes the per-stream gauges of a deleted stream.
func forgetStreamMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	streamCondition.DeletePartialMatch(labels)
	streamDeadLettered.DeletePartialMatch(labels)
	streamQueueReady.DeletePartialMatch(labels)
}
