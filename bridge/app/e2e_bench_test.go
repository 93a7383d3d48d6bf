package app

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// BenchmarkEndToEnd publishes b.N events with confirms (256 in flight) through RabbitMQ and
// one bridge to 100 SSE clients in this process, and reports deliveries per second and the
// publish→client latency percentiles seen by one client. Client decoding shares the CPU with
// the bridge and the broker, so the figures are a floor.
func BenchmarkEndToEnd(b *testing.B) { benchmarkEndToEnd(b, 0) }

// BenchmarkEndToEndAt500PerSecond is the same at a steady 500 events/s (50,000 deliveries/s):
// latency without a publishing backlog.
func BenchmarkEndToEndAt500PerSecond(b *testing.B) { benchmarkEndToEnd(b, 500) }

func benchmarkEndToEnd(b *testing.B, rate int) {
	node := rabbitmqtest.Shared(b)
	const clients = 100
	queue, exchange := "bench-q-"+events.NewID()[:8], "bench-x-"+events.NewID()[:8]
	br := startBridge(b, node.URI, "--queue="+queue, "--exchange="+exchange, "--buffer-size=100000", "--prefetch=500")
	b.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })

	var cs []*benchClient
	for i := 0; i < clients; i++ {
		cs = append(cs, connectBench(b, "http://"+br.SSEAddr()+"/api/v1/events?team_id=1"))
	}
	for br.Hub.Len() != clients {
		time.Sleep(10 * time.Millisecond)
	}
	p, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()

	var tick <-chan time.Time
	if rate > 0 {
		ticker := time.NewTicker(time.Second / time.Duration(rate))
		defer ticker.Stop()
		tick = ticker.C
	}
	b.ResetTimer()
	start := time.Now()
	var inFlight []*publish.Confirmation
	for i := 0; i < b.N; i++ {
		if tick != nil {
			<-tick
		}
		body := `{"n":` + strconv.Itoa(i) + `,"sent":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + strings.Repeat("x", 120) + `"}`
		dc, err := p.PublishDeferred(context.Background(), "team.1.job.1.status", []byte(body), publish.PublishOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if inFlight = append(inFlight, dc); len(inFlight) == 256 {
			for _, c := range inFlight {
				_ = publish.WaitConfirm(context.Background(), c)
			}
			inFlight = inFlight[:0]
		}
	}
	for _, c := range inFlight {
		_ = publish.WaitConfirm(context.Background(), c)
	}
	for _, c := range cs {
		c.wait(b, b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*clients)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	lat := cs[0].latencies()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

type benchClient struct {
	mu     sync.Mutex
	count  int
	lat    []time.Duration
	notify chan struct{}
}

func connectBench(b *testing.B, url string) *benchClient {
	b.Helper()
	c := &benchClient{notify: make(chan struct{}, 1)}
	tc := connectWith(b, url, "")
	go func() {
		for m := range tc.events {
			now := time.Now()
			c.mu.Lock()
			c.count++
			if i := strings.Index(m.Data, `"sent":`); i >= 0 {
				rest := m.Data[i+7:]
				if j := strings.IndexByte(rest, ','); j > 0 {
					if ns, err := strconv.ParseInt(rest[:j], 10, 64); err == nil {
						c.lat = append(c.lat, now.Sub(time.Unix(0, ns)))
					}
				}
			}
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

func (c *benchClient) wait(b *testing.B, n int) {
	deadline := time.After(120 * time.Second)
	for {
		c.mu.Lock()
		got := c.count
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.notify:
		case <-deadline:
			b.Fatalf("client got %d of %d", got, n)
		}
	}
}

func (c *benchClient) latencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.lat...)
}
