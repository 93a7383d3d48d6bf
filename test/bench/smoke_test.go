package bench

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestHarnessSmoke runs every bridge scenario of the harness at a tiny size (50 streams, a
// handful of events, 300 connects) against the real bridge binary and the private RabbitMQ
// node, so `make bench` keeps working. It checks the harness's bookkeeping — every event
// counted once, no drops, the table rendered — never speed: CI machines are shared.
func TestHarnessSmoke(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	binary := clitest.Build(t, clitest.BridgePackage, "")

	wire := startInProcessWire(t)
	env := &Env{BridgeBinary: binary, AMQPURL: node.URI, Wire: wire, Sources: 2,
		Secret: strings.Repeat("s", 32), Log: testWriter{t}, RunID: "smoke" + time.Now().Format("150405.000")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	idle, br, wr, err := IdleAndFanOut(ctx, env, FanOutConfig{Conns: 50, Tenants: 5, Rates: []float64{200}, Step: 500 * time.Millisecond, Parallel: 8})
	if err != nil {
		t.Fatal(err)
	}
	if idle.Conns != 50 || idle.Bridge.Goroutines <= 0 {
		t.Errorf("idle: %+v", idle)
	}
	for name, res := range map[string]FanOutResult{"bridge": br, "wire": wr} {
		if len(res.Steps) == 0 {
			t.Fatalf("%s: no fan-out step ran", name)
		}
		s := res.Steps[0]
		if s.Expected == 0 || s.Received != s.Expected || s.Drops != 0 || s.Latency.Count != uint64(s.Received) {
			t.Errorf("%s step: expected %d received %d drops %d latency samples %d", name, s.Expected, s.Received, s.Drops, s.Latency.Count)
		}
	}

	bc, err := Broadcast(ctx, env, 50, 2, 8)
	if err != nil {
		t.Fatal(err)
	}
	if bc.Incomplete != 0 || bc.WireIncomplet != 0 || bc.ToLast.Count != 2 || bc.PerDelivery.Count != 100 {
		t.Errorf("broadcast: %+v", bc)
	}

	churn, err := Churn(ctx, env, 300, 8, 5)
	if err != nil {
		t.Fatal(err)
	}
	if churn.Failed != 0 || churn.Rate <= 0 || !churn.Back() {
		t.Errorf("churn: %+v", churn)
	}

	snap, err := Snapshot(ctx, env, SnapshotConfig{Keys: 300, Clients: 20, Parallel: 8, LiveStreams: 5, LiveRate: 100, LiveFor: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Failed != 0 || snap.PerClient.Count != 20 || snap.CountedPerKey <= 230 || snap.LiveDeliveries[0] != snap.LiveDeliveries[1] || snap.LiveAlone.Count == 0 {
		t.Errorf("snapshot: %+v", snap)
	}

	cons, err := Consumer(ctx, env, 500)
	if err != nil {
		t.Fatal(err)
	}
	if !cons.Complete || cons.Rate <= 0 {
		t.Errorf("consumer: %+v", cons)
	}

	md := (&Results{Machine: "smoke", Date: time.Now(), Idle: &idle, Bridge: &br, Wire: &wr, Broadcast: &bc, Churn: &churn, Snapshot: &snap, Consumer: &cons}).Markdown()
	for _, want := range []string{"RSS per stream", "sustained deliveries", "time to last receipt", "authenticated connects/s", "snapshot-end", "events/s from RabbitMQ into the hub"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	doc := ReplaceResults(ReplaceResults("# Performance\n\nprose\n", "old\n"), md)
	if strings.Count(doc, BeginMarker) != 1 || strings.Contains(doc, "old\n") || !strings.HasPrefix(doc, "# Performance\n\nprose\n") {
		t.Errorf("ReplaceResults:\n%s", doc)
	}
}

// startInProcessWire serves a WireServer on loopback in this process.
func startInProcessWire(t *testing.T) *Wire {
	srv := &WireServer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	control := &http.Server{Handler: srv.ControlHandler()}
	go func() { _ = srv.ServeStreams(l) }()
	go func() { _ = control.Serve(cl) }()
	t.Cleanup(func() {
		_ = l.Close()
		_ = control.Close()
	})
	return &Wire{Addr: l.Addr().String(), Control: cl.Addr().String(), PID: os.Getpid()}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestHistogramPercentiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(i, time.Duration(i)*time.Millisecond)
	}
	s := h.Summarize()
	within := func(got, want time.Duration) bool { return got >= want*98/100 && got <= want*101/100 }
	if s.Count != 1000 || !within(s.P50, 500*time.Millisecond) || !within(s.P99, 990*time.Millisecond) || !within(s.P999, 999*time.Millisecond) {
		t.Errorf("summary %+v", s)
	}
}
