// Package metrics defines the bridge's Prometheus metrics. Their names are a contract: the
// operator scrapes them into EventStream status. Each Metrics has its own registry, so several
// bridges can live in one process (tests).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Metric names; those from contract are scraped by the operator.
const (
	Clients               = contract.MetricClients
	EventsConsumed        = "eventstream_bridge_events_consumed_total"
	EventsDelivered       = contract.MetricEventsDelivered
	EventsDropped         = contract.MetricEventsDropped
	MessagesMalformed     = "eventstream_bridge_messages_malformed_total"
	BrokerReconnects      = contract.MetricBrokerReconnects
	ConsumerLagMessages   = contract.MetricConsumerLagMessages
	DeliveryLatency       = "eventstream_bridge_delivery_latency_seconds"
	ConnectionsRejected   = "eventstream_bridge_connections_rejected_total"
	BrokerConnected       = "eventstream_bridge_broker_connected"
	MaxConnections        = "eventstream_bridge_max_connections"
	EventsRedelivered     = "eventstream_bridge_events_redelivered_total"
	RedeliveredSuppressed = "eventstream_bridge_events_redelivered_suppressed_total"
	SlowClientsEnded      = "eventstream_bridge_slow_client_disconnects_total"
	SnapshotKeys          = contract.MetricSnapshotKeys
	SnapshotBytes         = contract.MetricSnapshotBytes
	SnapshotsSent         = "eventstream_bridge_snapshots_sent_total"
	SnapshotEventsSent    = "eventstream_bridge_snapshot_events_sent_total"
)

// Metrics holds the bridge's collectors and their registry.
type Metrics struct {
	Registry *prometheus.Registry

	// Clients is the number of open SSE streams.
	Clients prometheus.Gauge
	// Consumed counts messages taken from the queue (valid or not).
	Consumed prometheus.Counter
	// Delivered counts events written to clients (one per client per event).
	Delivered prometheus.Counter
	// Dropped counts events not delivered to a client, by reason (overflow, superseded).
	Dropped *prometheus.CounterVec
	// SlowClientDisconnects counts subscriptions ended by the disconnect overflow policy; their
	// buffered events are not counted as dropped (the client resumes them with Last-Event-ID).
	SlowClientDisconnects prometheus.Counter
	// Redelivered counts messages the broker delivered again because an earlier delivery was
	// not acked (a bridge stopped or lost its connection first): clients may see them twice.
	Redelivered prometheus.Counter
	// RedeliveredSuppressed counts the redelivered messages whose event (by its payload's id)
	// this process had already handed to clients before its connection dropped: acked, not
	// sent again. Included in Redelivered.
	RedeliveredSuppressed prometheus.Counter
	// Malformed counts rejected messages by reason (not_json, routing_key, oversize).
	Malformed *prometheus.CounterVec
	// Reconnects counts re-established broker connections after a loss.
	Reconnects prometheus.Counter
	// BrokerUp is 1 while the consumer is connected and consuming.
	BrokerUp prometheus.Gauge
	// Lag is the number of messages in the queue not yet delivered to this bridge.
	Lag prometheus.Gauge
	// Latency is publish→write-to-client time, from the message's timestamp.
	Latency prometheus.Histogram
	// Rejected counts refused SSE connections by reason.
	Rejected *prometheus.CounterVec
	// ConnectionLimit is the bridge's limit of open streams (0: unlimited), so that alerts
	// can compare Clients with it.
	ConnectionLimit prometheus.Gauge
	// SnapshotsSent counts snapshots written to clients (at connect and after gaps), and
	// SnapshotEventsSent the snapshot events in them (one per key).
	SnapshotsSent      prometheus.Counter
	SnapshotEventsSent prometheus.Counter
}

// New creates the metrics on a new registry that also carries the Go and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry:              reg,
		Clients:               prometheus.NewGauge(prometheus.GaugeOpts{Name: Clients, Help: "Open SSE streams."}),
		Consumed:              prometheus.NewCounter(prometheus.CounterOpts{Name: EventsConsumed, Help: "Messages consumed from the queue, valid or not."}),
		Delivered:             prometheus.NewCounter(prometheus.CounterOpts{Name: EventsDelivered, Help: "Events written to SSE clients (one per client per event)."}),
		Dropped:               prometheus.NewCounterVec(prometheus.CounterOpts{Name: EventsDropped, Help: "Events not delivered to a client, by reason."}, []string{"reason"}),
		SlowClientDisconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: SlowClientsEnded, Help: "Streams ended by the disconnect overflow policy (the client resumes with Last-Event-ID)."}),
		Redelivered:           prometheus.NewCounter(prometheus.CounterOpts{Name: EventsRedelivered, Help: "Messages delivered again by the broker after an unacked earlier delivery: possible duplicates for clients."}),
		RedeliveredSuppressed: prometheus.NewCounter(prometheus.CounterOpts{Name: RedeliveredSuppressed, Help: "Redelivered messages whose event this process had already handed to clients (same payload id) before its broker connection dropped: acked and not sent again."}),
		Malformed:             prometheus.NewCounterVec(prometheus.CounterOpts{Name: MessagesMalformed, Help: "Messages rejected to the dead-letter exchange, by reason."}, []string{"reason"}),
		Reconnects:            prometheus.NewCounter(prometheus.CounterOpts{Name: BrokerReconnects, Help: "Broker connections re-established after a loss."}),
		BrokerUp:              prometheus.NewGauge(prometheus.GaugeOpts{Name: BrokerConnected, Help: "1 while the bridge is connected to the broker and consuming."}),
		Lag:                   prometheus.NewGauge(prometheus.GaugeOpts{Name: ConsumerLagMessages, Help: "Messages in the queue not yet delivered to this bridge (estimate in stream mode)."}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    DeliveryLatency,
			Help:    "Time from publish (message timestamp) to the write to an SSE client.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		Rejected:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: ConnectionsRejected, Help: "SSE connections refused, by reason."}, []string{"reason"}),
		ConnectionLimit:    prometheus.NewGauge(prometheus.GaugeOpts{Name: MaxConnections, Help: "The bridge's limit of open SSE streams (0: unlimited)."}),
		SnapshotsSent:      prometheus.NewCounter(prometheus.CounterOpts{Name: SnapshotsSent, Help: "Snapshots written to SSE clients (at connect and after gaps)."}),
		SnapshotEventsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: SnapshotEventsSent, Help: "Snapshot events written to SSE clients (one per key per snapshot)."}),
	}
	reg.MustRegister(m.Clients, m.Consumed, m.Delivered, m.Dropped, m.SlowClientDisconnects, m.Redelivered, m.RedeliveredSuppressed, m.Malformed, m.Reconnects,
		m.BrokerUp, m.Lag, m.Latency, m.Rejected, m.ConnectionLimit, m.SnapshotsSent, m.SnapshotEventsSent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"overflow", "superseded"} {
		m.Dropped.WithLabelValues(r)
	}
	for _, r := range []string{"not_json", "routing_key", "oversize"} {
		m.Malformed.WithLabelValues(r)
	}
	return m
}

// ObserveSnapshot exports the snapshot store's size, read at each scrape: stats returns the
// number of keys and the bytes held.
func (m *Metrics) ObserveSnapshot(stats func() (keys, bytes int)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: SnapshotKeys, Help: "Routing keys in the snapshot store (newest event per key)."},
			func() float64 { keys, _ := stats(); return float64(keys) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: SnapshotBytes, Help: "Bytes the snapshot store holds (frames as allocated plus bookkeeping)."},
			func() float64 { _, bytes := stats(); return float64(bytes) }),
	)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
