package app

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// BenchmarkManyClients opens 4,000 SSE streams on one bridge (8,000 descriptors in this
// process: server and client ends, under the machine's 20,000-file limit), spread over 400
// teams, and reports the bridge's heap per open stream and the time for b.N events published
// to one team (10 receivers each) plus 10 broadcast events (received by all 4,000).
func BenchmarkManyClients(b *testing.B) {
	node := rabbitmqtest.Shared(b)
	const clients, teams = 4000, 400
	queue, exchange := "scale-q-"+events.NewID()[:8], "scale-x-"+events.NewID()[:8]
	b.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	br := startBridge(b, node.URI, "--queue="+queue, "--exchange="+exchange, "--heartbeat=1m", "--max-connections-per-tenant=0")

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var received atomic.Int64
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, clients)
	for i := 0; i < clients; i++ {
		conn, err := net.Dial("tcp", br.SSEAddr())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		fmt.Fprintf(conn, "GET /api/v1/events?team_id=t%d&team_id=all HTTP/1.1\r\nHost: x\r\n\r\n", i%teams)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(conn)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "data: ") {
					received.Add(1)
				}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	poll.Until(b, 60*time.Second, "all streams open", func() bool { return br.Hub.Len() == clients })
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// The clients' goroutines and buffers live in this process too; they are small next to the
	// server side (bufio.Reader 4 KiB each, counted below as part of the figure).
	perStream := float64(after.HeapInuse-before.HeapInuse) / clients
	stackPerStream := float64(after.StackInuse-before.StackInuse) / clients

	p := publisher(b, node.URI, exchange)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		publishRaw(b, p, "team.t7.job.1.status", []byte(`{"n":1}`))
	}
	for i := 0; i < 10; i++ {
		publishRaw(b, p, "team.all.job.1.status", []byte(`{"broadcast":1}`))
	}
	want := int64(b.N*(clients/teams) + 10*clients)
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if received.Load() < want {
		b.Fatalf("received %d of %d", received.Load(), want)
	}
	b.ReportMetric(perStream/1024, "KiB-heap/stream")
	b.ReportMetric(stackPerStream/1024, "KiB-stack/stream")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
}
