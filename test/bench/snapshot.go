package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SnapshotConfig sizes scenario 6: a store of Keys keys of one tenant; one client, then
// Clients at once, read its snapshot; LiveStreams streams of another tenant receive LiveRate
// events/s meanwhile.
type SnapshotConfig struct {
	Keys, Clients, Parallel int
	LiveStreams             int
	LiveRate                float64
	LiveFor                 time.Duration
}

// SnapshotResult is scenario 6.
type SnapshotResult struct {
	Keys int
	// CountedPerKey is the store's own count (eventstream_bridge_snapshot_bytes) per key;
	// HeapPerKey the growth of the Go heap in use per key while the store filled (noisier: it
	// includes garbage not yet collected and the replay ring).
	CountedPerKey, HeapPerKey float64
	// OneClient is connect → snapshot-end for a single client.
	OneClient time.Duration
	// Clients connected at once; AllClients is the start → the last snapshot-end; PerClient
	// summarises each client's connect → snapshot-end.
	Clients    int
	AllClients time.Duration
	PerClient  Summary
	Failed     int
	// Live is the latency of LiveStreams streams at LiveRate events/s alone, then while the
	// Clients snapshots are being sent (for at least LiveFor, and as long as they take).
	LiveStreams           int
	LiveRate              float64
	LiveAlone, LiveDuring Summary
	LiveDeliveries        [2]int64 // received/expected during the snapshots
}

// Snapshot runs scenario 6 on a fresh bridge with snapshots on.
func Snapshot(ctx context.Context, env *Env, cfg SnapshotConfig) (SnapshotResult, error) {
	res := SnapshotResult{Keys: cfg.Keys, Clients: cfg.Clients, LiveStreams: cfg.LiveStreams, LiveRate: cfg.LiveRate}
	b, pub, stop, err := env.startBridge(ctx, "--snapshot-max-keys="+strconv.Itoa(cfg.Keys+10), "--snapshot-max-bytes=1073741824")
	if err != nil {
		return res, err
	}
	defer stop()
	before, err := sampleBridge(b)
	if err != nil {
		return res, err
	}
	const tenant = "snap"
	for k := 0; k < cfg.Keys; k++ {
		if err := pub.PublishJob(ctx, tenant, strconv.Itoa(k), int64(k)); err != nil {
			return res, err
		}
	}
	if _, err := b.WaitMetric("eventstream_bridge_snapshot_keys", func(v float64) bool { return int(v) == cfg.Keys }, 60*time.Second); err != nil {
		return res, err
	}
	after, err := sampleBridge(b)
	if err != nil {
		return res, err
	}
	m, err := b.Metrics()
	if err != nil {
		return res, err
	}
	res.CountedPerKey = m["eventstream_bridge_snapshot_bytes"] / float64(cfg.Keys)
	res.HeapPerKey = float64(after.HeapInuse-before.HeapInuse) / float64(cfg.Keys)
	env.logf("snapshot: %d keys, counted %.0f B/key, heap %.0f B/key", cfg.Keys, res.CountedPerKey, res.HeapPerKey)

	token := HS256Token([]byte(env.Secret), []string{tenant}, 2*time.Hour)
	path := b.Path + "?snapshot=1&access_token=" + token
	sources := SourceAddrs(max(1, env.Sources))
	one, n, err := ReadSnapshot(ctx, sources[0], b.Addr, path)
	if err != nil {
		return res, fmt.Errorf("one snapshot: %w", err)
	}
	if n != cfg.Keys {
		return res, fmt.Errorf("one snapshot: %d events, want %d", n, cfg.Keys)
	}
	res.OneClient = one
	env.logf("snapshot: one client, %d keys in %v", n, one)

	// Live fan-out alone.
	live := env.newClient()
	defer live.Close()
	livePaths := env.tenantPaths(b.Path, cfg.LiveStreams, 1, func(int) string { return "live" })
	if err := live.Open(ctx, b.Addr, livePaths, cfg.Parallel); err != nil {
		return res, err
	}
	if _, err := b.WaitMetric("eventstream_bridge_clients", func(v float64) bool { return int(v) == cfg.LiveStreams }, 30*time.Second); err != nil {
		return res, err
	}
	// runLive publishes at LiveRate for LiveFor, and on until done is closed (nil: never).
	runLive := func(done <-chan struct{}) (Summary, [2]int64, error) {
		live.Latency.Reset()
		c0 := live.Counts()
		batch := max(1, int64(cfg.LiveRate/10)) // 100 ms of events
		var total int64
		for start := time.Now(); ; {
			if _, err := pub.PublishPaced(ctx, cfg.LiveRate, batch, func(int64) string { return "live" }); err != nil {
				return Summary{}, [2]int64{}, err
			}
			total += batch
			finished := done == nil
			select {
			case <-done:
				finished = true
			default:
			}
			if finished && time.Since(start) >= cfg.LiveFor {
				break
			}
		}
		want := c0.Received + total*int64(cfg.LiveStreams)
		live.WaitReceived(want, time.Now().Add(10*time.Second))
		return live.Latency.Summarize(), [2]int64{live.Counts().Received - c0.Received, total * int64(cfg.LiveStreams)}, nil
	}
	if res.LiveAlone, _, err = runLive(nil); err != nil {
		return res, err
	}

	// Clients snapshots at once, with the live load running.
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		per       Histogram
		failed    int
		startGate = make(chan struct{})
	)
	for i := 0; i < cfg.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			d, n, err := ReadSnapshot(ctx, sources[i%len(sources)], b.Addr, path)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || n != cfg.Keys {
				if failed++; failed == 1 {
					env.logf("snapshot: first failure: %d events, %v", n, err)
				}
				return
			}
			per.Record(0, d)
		}()
	}
	liveDone := make(chan error, 1)
	snapshotsDone := make(chan struct{})
	start := time.Now()
	close(startGate)
	go func() {
		var err error
		res.LiveDuring, res.LiveDeliveries, err = runLive(snapshotsDone)
		liveDone <- err
	}()
	wg.Wait()
	res.AllClients = time.Since(start)
	close(snapshotsDone)
	if err := <-liveDone; err != nil {
		return res, err
	}
	res.PerClient, res.Failed = per.Summarize(), failed
	env.logf("snapshot: %d clients at once: all done in %v (per client p50 %v p99 %v, %d failed); live p99 alone %v, during %v (%d/%d)",
		cfg.Clients, res.AllClients, res.PerClient.P50, res.PerClient.P99, failed, res.LiveAlone.P99, res.LiveDuring.P99,
		res.LiveDeliveries[0], res.LiveDeliveries[1])
	return res, nil
}

// ReadSnapshot opens a snapshot=1 stream, reads up to its snapshot-end and closes it; it
// returns the time from connecting to snapshot-end and the number of snapshot events.
func ReadSnapshot(ctx context.Context, source net.IP, addr, path string) (time.Duration, int, error) {
	start := time.Now()
	conn, body, err := dialStream(ctx, source, addr, path)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	lines := bufio.NewReaderSize(body, 64<<10)
	n := 0
	for {
		line, err := lines.ReadSlice('\n')
		if err != nil {
			return 0, n, fmt.Errorf("read snapshot after %d events: %w", n, err)
		}
		switch {
		case bytes.Equal(line, []byte("event: snapshot\n")):
			n++
		case bytes.Equal(line, []byte("event: snapshot-end\n")):
			return time.Since(start), n, nil
		}
	}
}

// PublishJob sends event k of tenant's job, stamped now: one key of the snapshot store.
func (p *Publisher) PublishJob(ctx context.Context, tenant, job string, k int64) error {
	now := time.Now()
	p.body = AppendPayload(p.body[:0], k, tenant, now.UnixNano())
	return p.ch.PublishWithContext(ctx, p.exchange, "team."+tenant+".job."+job+".status", false, false, amqp.Publishing{
		ContentType: "application/json",
		Timestamp:   now,
		Body:        p.body,
	})
}
