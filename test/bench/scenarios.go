package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// Env is what every scenario needs.
type Env struct {
	BridgeBinary string
	AMQPURL      string
	// Wire is the wire-limit server (nil: scenarios skip the wire measurements).
	Wire *Wire
	// Sources is how many loopback source addresses client connections are spread over.
	Sources int
	// Secret is the HS256 secret shared by bridge and client (at least 32 bytes).
	Secret string
	// BridgeFlags are extra bridge flags (e.g. a profile listener).
	BridgeFlags []string
	// Log receives progress lines and the bridges' stderr.
	Log io.Writer
	// RunID names the run's queues and exchanges.
	RunID string
	seq   atomic.Int64
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "bench: "+format+"\n", args...)
}

// startBridge starts a fresh bridge (with extra flags after the environment's) and a publisher
// on its own queue and exchange; stop both (and delete the topology) with the returned function.
func (e *Env) startBridge(ctx context.Context, extra ...string) (*BridgeProcess, *Publisher, func(), error) {
	n := e.seq.Add(1)
	exchange := fmt.Sprintf("bench.%s.%d.events", e.RunID, n)
	queue := fmt.Sprintf("bench.%s.%d.sse", e.RunID, n)
	b, err := StartBridge(ctx, BridgeOptions{Binary: e.BridgeBinary, AMQPURL: e.AMQPURL, Exchange: exchange,
		Queue: queue, JWTSecret: e.Secret, Extra: append(append([]string(nil), e.BridgeFlags...), extra...), Log: e.Log})
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := DialPublisher(e.AMQPURL, exchange)
	if err != nil {
		b.Stop()
		return nil, nil, nil, err
	}
	return b, p, sync.OnceFunc(func() {
		b.Stop()
		p.Cleanup(queue)
		p.Close()
	}), nil
}

// tenantPaths returns conns request targets over tenants (stream i reads tenant i % tenants),
// each with a token granting exactly its tenant.
func (e *Env) tenantPaths(path string, conns, tenants int, name func(int) string) []string {
	tokens := make([]string, tenants)
	for t := range tokens {
		tokens[t] = HS256Token([]byte(e.Secret), []string{name(t)}, 2*time.Hour)
	}
	paths := make([]string, conns)
	for i := range paths {
		paths[i] = TenantPath(path, name(i%tenants), tokens[i%tenants])
	}
	return paths
}

func (e *Env) newClient() *Client {
	return &Client{Sources: SourceAddrs(max(1, e.Sources))}
}

// MemSample is a process's memory as the OS and the Go runtime see it.
type MemSample struct {
	RSS        int64
	HeapInuse  int64
	StackInuse int64
	Goroutines int64
}

func sampleBridge(b *BridgeProcess) (MemSample, error) {
	st, err := ReadProc(b.PID())
	if err != nil {
		return MemSample{}, err
	}
	m, err := b.Metrics()
	if err != nil {
		return MemSample{}, err
	}
	return MemSample{RSS: st.RSS, HeapInuse: int64(m["go_memstats_heap_inuse_bytes"]),
		StackInuse: int64(m["go_memstats_stack_inuse_bytes"]), Goroutines: int64(m["go_goroutines"])}, nil
}

// PerConn is the per-connection growth between two samples.
type PerConn struct {
	RSS, Heap, Stack, Goroutines float64
}

func perConn(before, after MemSample, n int) PerConn {
	f := float64(n)
	return PerConn{
		RSS:        float64(after.RSS-before.RSS) / f,
		Heap:       float64(after.HeapInuse-before.HeapInuse) / f,
		Stack:      float64(after.StackInuse-before.StackInuse) / f,
		Goroutines: float64(after.Goroutines-before.Goroutines) / f,
	}
}

// FanOutConfig sizes the idle and fan-out scenarios.
type FanOutConfig struct {
	Conns   int
	Tenants int
	// Rates are the offered deliveries per second of each step, ascending.
	Rates []float64
	// Step is each step's publishing time.
	Step time.Duration
	// Parallel is the number of concurrent dialers when opening streams.
	Parallel int
}

// IdleResult is scenario 1.
type IdleResult struct {
	Conns          int
	Before, After  MemSample
	Bridge         PerConn
	WireRSSPerConn float64 // the wire server's RSS growth per connection (NaN: not measured)
	OpenTime       time.Duration
}

// Step is one rate step of the fan-out scenario.
type Step struct {
	Offered   float64 // deliveries/s
	Expected  int64
	Received  int64
	Achieved  float64 // deliveries/s: Received / (last receipt − start)
	Drops     int64   // bridge drop counter + gap events seen
	Latency   Summary
	CPU       time.Duration
	Pass      bool
	PubBehind bool // the publisher could not keep the offered rate
}

// CPUPer100k is the server CPU time per 100,000 deliveries in this step.
func (s Step) CPUPer100k() time.Duration {
	if s.Received == 0 {
		return 0
	}
	return time.Duration(float64(s.CPU) * 1e5 / float64(s.Received))
}

// FanOutResult is scenario 2 for one server (bridge or wire).
type FanOutResult struct {
	Steps []Step
	// Max is the highest passing step (zero value when none passed).
	Max Step
	// Half is a run at half of Max's rate (latency target).
	Half Step
}

// IdleAndFanOut runs scenario 1 on a fresh bridge, then scenario 2 on the same streams, then
// scenario 2 against the wire server with the same number of streams and rates.
func IdleAndFanOut(ctx context.Context, env *Env, cfg FanOutConfig) (IdleResult, FanOutResult, FanOutResult, error) {
	var idle IdleResult
	var bridgeRes, wireRes FanOutResult
	b, pub, stop, err := env.startBridge(ctx)
	if err != nil {
		return idle, bridgeRes, wireRes, err
	}
	defer stop()
	settle := func() { time.Sleep(2 * time.Second) } // let the runtime finish post-connect work before sampling
	settle()
	before, err := sampleBridge(b)
	if err != nil {
		return idle, bridgeRes, wireRes, err
	}
	perTenant := cfg.Conns / cfg.Tenants
	paths := env.tenantPaths(b.Path, cfg.Conns, cfg.Tenants, Tenant)
	client := env.newClient()
	defer client.Close()
	env.logf("idle: opening %d streams over %d tenants", cfg.Conns, cfg.Tenants)
	t0 := time.Now()
	if err := client.Open(ctx, b.Addr, paths, cfg.Parallel); err != nil {
		return idle, bridgeRes, wireRes, err
	}
	idle.OpenTime = time.Since(t0)
	if _, err := b.WaitMetric(metrics.Clients, func(v float64) bool { return int(v) == cfg.Conns }, 30*time.Second); err != nil {
		return idle, bridgeRes, wireRes, err
	}
	settle()
	after, err := sampleBridge(b)
	if err != nil {
		return idle, bridgeRes, wireRes, err
	}
	idle = IdleResult{Conns: cfg.Conns, Before: before, After: after, Bridge: perConn(before, after, cfg.Conns),
		WireRSSPerConn: math.NaN(), OpenTime: idle.OpenTime}
	env.logf("idle: %.0f B RSS, %.0f B heap, %.0f B stack, %.2f goroutines per stream",
		idle.Bridge.RSS, idle.Bridge.Heap, idle.Bridge.Stack, idle.Bridge.Goroutines)

	tenantOf := func(k int64) string { return Tenant(int(k % int64(cfg.Tenants))) }
	runBridgeStep := func(offered float64, step time.Duration) (Step, error) {
		evRate := offered / float64(perTenant)
		total := int64(evRate * step.Seconds())
		s := Step{Offered: offered, Expected: total * int64(perTenant)}
		client.Latency.Reset()
		c0 := client.Counts()
		m0, err := b.Metrics()
		if err != nil {
			return s, err
		}
		p0, _ := ReadProc(b.PID())
		start := time.Now()
		if _, err := pub.PublishPaced(ctx, evRate, total, tenantOf); err != nil {
			return s, err
		}
		s.PubBehind = time.Since(start) > step+step/20
		done, _ := client.WaitReceived(c0.Received+s.Expected, time.Now().Add(3*time.Second))
		p1, _ := ReadProc(b.PID())
		c1 := client.Counts()
		m1, err := b.Metrics()
		if err != nil {
			return s, err
		}
		s.Received = c1.Received - c0.Received
		s.Drops = int64(m1[metrics.EventsDropped]-m0[metrics.EventsDropped]) + (c1.Gaps - c0.Gaps)
		s.Achieved = float64(s.Received) / done.Sub(start).Seconds()
		s.Latency = client.Latency.Summarize()
		s.CPU = p1.CPU - p0.CPU
		s.Pass = s.Received == s.Expected && s.Drops == 0 && s.Achieved >= 0.95*offered
		return s, nil
	}
	bridgeRes, err = stepUp(env, "bridge", cfg, runBridgeStep)
	if err != nil {
		return idle, bridgeRes, wireRes, err
	}
	client.Close()
	stop()

	if env.Wire == nil {
		return idle, bridgeRes, wireRes, nil
	}
	wst0, err := ReadProc(env.Wire.PID)
	if err != nil {
		return idle, bridgeRes, wireRes, err
	}
	wclient := env.newClient()
	defer wclient.Close()
	if err := wclient.Open(ctx, env.Wire.Addr, paths, cfg.Parallel); err != nil {
		return idle, bridgeRes, wireRes, err
	}
	if err := env.Wire.WaitConns(cfg.Conns, 30*time.Second); err != nil {
		return idle, bridgeRes, wireRes, err
	}
	settle()
	wst1, _ := ReadProc(env.Wire.PID)
	idle.WireRSSPerConn = float64(wst1.RSS-wst0.RSS) / float64(cfg.Conns)
	runWireStep := func(offered float64, step time.Duration) (Step, error) {
		evRate := offered / float64(perTenant)
		s := Step{Offered: offered}
		wclient.Latency.Reset()
		c0 := wclient.Counts()
		p0, _ := ReadProc(env.Wire.PID)
		start := time.Now()
		run, err := env.Wire.Run(evRate, step)
		if err != nil {
			return s, err
		}
		s.PubBehind = time.Since(start) > step+step/20
		s.Expected = run.Writes
		done, _ := wclient.WaitReceived(c0.Received+s.Expected, time.Now().Add(3*time.Second))
		p1, _ := ReadProc(env.Wire.PID)
		c1 := wclient.Counts()
		s.Received = c1.Received - c0.Received
		s.Drops = run.Errors
		s.Achieved = float64(s.Received) / done.Sub(start).Seconds()
		s.Latency = wclient.Latency.Summarize()
		s.CPU = p1.CPU - p0.CPU
		s.Pass = s.Received == s.Expected && s.Drops == 0 && s.Achieved >= 0.95*offered && s.Expected >= int64(0.99*offered*step.Seconds())
		return s, nil
	}
	wireRes, err = stepUp(env, "wire", cfg, runWireStep)
	return idle, bridgeRes, wireRes, err
}

// stepUp runs the rate steps until one fails, then a step at half the highest passing rate.
func stepUp(env *Env, name string, cfg FanOutConfig, run func(float64, time.Duration) (Step, error)) (FanOutResult, error) {
	var res FanOutResult
	for _, rate := range cfg.Rates {
		s, err := run(rate, cfg.Step)
		if err != nil {
			return res, err
		}
		env.logf("fan-out %s: offered %.0f/s achieved %.0f/s received %d/%d drops %d p50 %v p99 %v p99.9 %v cpu/100k %v pass %v%s",
			name, s.Offered, s.Achieved, s.Received, s.Expected, s.Drops, s.Latency.P50, s.Latency.P99, s.Latency.P999,
			s.CPUPer100k(), s.Pass, map[bool]string{true: " (publisher behind)", false: ""}[s.PubBehind])
		res.Steps = append(res.Steps, s)
		if !s.Pass {
			break
		}
		res.Max = s
	}
	if res.Max.Offered > 0 {
		s, err := run(res.Max.Offered/2, cfg.Step)
		if err != nil {
			return res, err
		}
		env.logf("fan-out %s at half max (%.0f/s): p50 %v p99 %v p99.9 %v pass %v", name, s.Offered, s.Latency.P50, s.Latency.P99, s.Latency.P999, s.Pass)
		res.Half = s
	}
	return res, nil
}

// BroadcastResult is scenario 3: per repetition, the time from publish to the last of Conns
// receipts.
type BroadcastResult struct {
	Conns, Reps   int
	ToLast        Summary // over repetitions
	PerDelivery   Summary // over all deliveries
	WireToLast    Summary
	Incomplete    int // repetitions where not every stream received the event in 5s
	WireIncomplet int
}

// Broadcast runs scenario 3 on a fresh bridge, then the same against the wire server.
func Broadcast(ctx context.Context, env *Env, conns, reps, parallel int) (BroadcastResult, error) {
	res := BroadcastResult{Conns: conns, Reps: reps}
	b, pub, stop, err := env.startBridge(ctx)
	if err != nil {
		return res, err
	}
	defer stop()
	paths := env.tenantPaths(b.Path, conns, 1, func(int) string { return "all" })
	client := env.newClient()
	defer client.Close()
	if err := client.Open(ctx, b.Addr, paths, parallel); err != nil {
		return res, err
	}
	if _, err := b.WaitMetric(metrics.Clients, func(v float64) bool { return int(v) == conns }, 30*time.Second); err != nil {
		return res, err
	}
	var toLast Histogram
	client.Latency.Reset()
	for r := 0; r < reps; r++ {
		c0 := client.Counts()
		start := time.Now()
		if err := pub.PublishOne(ctx, int64(r), "all"); err != nil {
			return res, err
		}
		done, ok := client.WaitReceived(c0.Received+int64(conns), start.Add(5*time.Second))
		if !ok {
			res.Incomplete++
		}
		toLast.Record(0, done.Sub(start))
		time.Sleep(100 * time.Millisecond) // spacing between repetitions
	}
	res.ToLast = toLast.Summarize()
	res.PerDelivery = client.Latency.Summarize()
	env.logf("broadcast bridge: to last receipt p50 %v p99 %v max %v (per delivery p99 %v), incomplete %d",
		res.ToLast.P50, res.ToLast.P99, res.ToLast.Max, res.PerDelivery.P99, res.Incomplete)
	client.Close()
	stop()

	if env.Wire == nil {
		return res, nil
	}
	wclient := env.newClient()
	defer wclient.Close()
	if err := wclient.Open(ctx, env.Wire.Addr, paths, parallel); err != nil {
		return res, err
	}
	if err := env.Wire.WaitConns(conns, 30*time.Second); err != nil {
		return res, err
	}
	var wireToLast Histogram
	for r := 0; r < reps; r++ {
		c0 := wclient.Counts()
		start := time.Now()
		// One event (rate 1000/s for 1ms schedules exactly event 0); receipts are watched
		// while the run call is still in flight.
		runErr := make(chan error, 1)
		go func() {
			_, err := env.Wire.Run(1000, time.Millisecond)
			runErr <- err
		}()
		done, ok := wclient.WaitReceived(c0.Received+int64(conns), start.Add(5*time.Second))
		if err := <-runErr; err != nil {
			return res, err
		}
		if !ok {
			res.WireIncomplet++
		}
		wireToLast.Record(0, done.Sub(start))
		time.Sleep(100 * time.Millisecond) // spacing between repetitions
	}
	res.WireToLast = wireToLast.Summarize()
	env.logf("broadcast wire: to last receipt p50 %v p99 %v", res.WireToLast.P50, res.WireToLast.P99)
	return res, nil
}

// ChurnResult is scenario 4.
type ChurnResult struct {
	Connects    int
	Failed      int64
	Rate        float64 // connects/s
	Baseline    MemSample
	Half        MemSample // after half the connects
	After       MemSample // after all, once the clients gauge is 0
	AfterSettle time.Duration
}

// Churn runs scenario 4 on a fresh bridge: total authenticated connect→opening flush→close
// cycles from parallel workers, then memory against the baseline.
func Churn(ctx context.Context, env *Env, total, parallel, tenants int) (ChurnResult, error) {
	res := ChurnResult{Connects: total}
	b, _, stop, err := env.startBridge(ctx)
	if err != nil {
		return res, err
	}
	defer stop()
	paths := env.tenantPaths(b.Path, tenants, tenants, Tenant)
	sources := SourceAddrs(max(1, env.Sources))
	// Warm up (first TLS-free connects, JIT-free but pools and maps grow) before the baseline.
	for i := 0; i < 200; i++ {
		if err := ConnectOnce(ctx, sources[i%len(sources)], b.Addr, paths[i%len(paths)]); err != nil {
			return res, fmt.Errorf("warm-up connect: %w", err)
		}
	}
	if _, err := b.WaitMetric(metrics.Clients, func(v float64) bool { return v == 0 }, 10*time.Second); err != nil {
		return res, err
	}
	time.Sleep(time.Second) // settle before the baseline sample
	if res.Baseline, err = sampleBridge(b); err != nil {
		return res, err
	}
	var failed atomic.Int64
	runHalf := func(from, to int) time.Duration {
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < parallel; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= to || ctx.Err() != nil {
						return
					}
					if err := ConnectOnce(ctx, sources[i%len(sources)], b.Addr, paths[i%len(paths)]); err != nil {
						if failed.Add(1) == 1 {
							env.logf("churn: first failure: %v", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	d1 := runHalf(0, total/2)
	if _, err := b.WaitMetric(metrics.Clients, func(v float64) bool { return v == 0 }, 30*time.Second); err != nil {
		return res, err
	}
	if res.Half, err = sampleBridge(b); err != nil {
		return res, err
	}
	d2 := runHalf(total/2, total)
	res.Failed = failed.Load()
	res.Rate = float64(total-int(res.Failed)) / (d1 + d2).Seconds()
	settleStart := time.Now()
	if _, err := b.WaitMetric(metrics.Clients, func(v float64) bool { return v == 0 }, 30*time.Second); err != nil {
		return res, err
	}
	time.Sleep(time.Second) // settle as for the baseline
	res.AfterSettle = time.Since(settleStart)
	if res.After, err = sampleBridge(b); err != nil {
		return res, err
	}
	env.logf("churn: %d connects at %.0f/s, %d failed; RSS %d → %d → %d KiB, heap %d → %d → %d KiB, goroutines %d → %d → %d",
		total, res.Rate, res.Failed, res.Baseline.RSS>>10, res.Half.RSS>>10, res.After.RSS>>10,
		res.Baseline.HeapInuse>>10, res.Half.HeapInuse>>10, res.After.HeapInuse>>10,
		res.Baseline.Goroutines, res.Half.Goroutines, res.After.Goroutines)
	return res, nil
}
