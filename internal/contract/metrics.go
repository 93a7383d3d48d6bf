package contract

// Metric names the bridge exposes (bridge/metrics) and the operator sums into the
// EventStream's status (controllers/scrape.go).
const (
	MetricClients             = "eventstream_bridge_clients"
	MetricEventsDelivered     = "eventstream_bridge_events_delivered_total"
	MetricEventsDropped       = "eventstream_bridge_events_dropped_total"
	MetricBrokerReconnects    = "eventstream_bridge_broker_reconnects_total"
	MetricConsumerLagMessages = "eventstream_bridge_consumer_lag_messages"
	MetricSnapshotKeys        = "eventstream_bridge_snapshot_keys"
	MetricSnapshotBytes       = "eventstream_bridge_snapshot_bytes"
)
