package controllers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// maxMetricsBytes bounds what one scrape reads.
const maxMetricsBytes = 1 << 20

// BridgeFigures are one bridge pod's figures.
type BridgeFigures struct {
	Clients, Delivered, Dropped, Reconnects, LagMessages int64
	// SnapshotKeys and SnapshotBytes are the size of the pod's snapshot store (0 when off).
	SnapshotKeys, SnapshotBytes int64
}

// MetricsScraper reads a bridge pod's figures from its /metrics URL.
type MetricsScraper interface {
	Scrape(ctx context.Context, url string) (BridgeFigures, error)
}

// HTTPScraper scrapes over HTTP with a short timeout.
type HTTPScraper struct {
	Client *http.Client
}

// NewHTTPScraper returns a scraper whose requests end after timeout.
func NewHTTPScraper(timeout time.Duration) *HTTPScraper {
	return &HTTPScraper{Client: &http.Client{Timeout: timeout}}
}

// Scrape implements MetricsScraper.
func (s *HTTPScraper) Scrape(ctx context.Context, url string) (BridgeFigures, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return BridgeFigures{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	res, err := s.Client.Do(req)
	if err != nil {
		return BridgeFigures{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return BridgeFigures{}, fmt.Errorf("scrape %s: status %d", url, res.StatusCode)
	}
	return parseBridgeMetrics(io.LimitReader(res.Body, maxMetricsBytes))
}

// parseBridgeMetrics reads the bridge's figures from the Prometheus text format. Counters
// with labels (dropped by reason) are summed; missing metrics count as zero.
func parseBridgeMetrics(r io.Reader) (BridgeFigures, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return BridgeFigures{}, fmt.Errorf("parse metrics: %w", err)
	}
	sum := func(name string) int64 {
		f, ok := families[name]
		if !ok {
			return 0
		}
		var total float64
		for _, m := range f.GetMetric() {
			total += value(m)
		}
		return int64(total)
	}
	return BridgeFigures{
		Clients:       sum(contract.MetricClients),
		Delivered:     sum(contract.MetricEventsDelivered),
		Dropped:       sum(contract.MetricEventsDropped),
		Reconnects:    sum(contract.MetricBrokerReconnects),
		LagMessages:   sum(contract.MetricConsumerLagMessages),
		SnapshotKeys:  sum(contract.MetricSnapshotKeys),
		SnapshotBytes: sum(contract.MetricSnapshotBytes),
	}, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
