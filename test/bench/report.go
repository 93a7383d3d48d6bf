package bench

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// Results collects what a run measured; nil parts were not run.
type Results struct {
	Machine   string
	Date      time.Time
	Notes     []string
	Idle      *IdleResult
	Bridge    *FanOutResult
	Wire      *FanOutResult
	Broadcast *BroadcastResult
	Churn     *ChurnResult
	Snapshot  *SnapshotResult
	Consumer  *ConsumerResult
	// Operator rows are filled by cmd/bench's operator scenario.
	Operator [][]string
}

// Machine describes the host: CPUs, memory, kernel and Go version.
func Machine(goVersion string, cpus int) string {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					model = " (" + strings.TrimSpace(v) + ")"
				}
				break
			}
		}
	}
	return fmt.Sprintf("nproc %d%s, memory %s, Linux %s, %s", cpus, model, mem, kernel, goVersion)
}

func kib(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }

func rate(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f/s", v)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// Markdown renders the results table with the machine and date.
func (r *Results) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	b.WriteString("| # | scenario | figure | bridge | wire limit | target | |\n|---|---|---|---|---|---|---|\n")
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	if i := r.Idle; i != nil {
		wire := "—"
		if !math.IsNaN(i.WireRSSPerConn) {
			wire = kib(i.WireRSSPerConn)
		}
		row("1", fmt.Sprintf("idle, %d streams, JWT", i.Conns), "RSS per stream", kib(i.Bridge.RSS), wire, "≤ 8 KiB", verdict(i.Bridge.RSS <= 8*1024))
		row("1", "", "Go heap in use per stream", kib(i.Bridge.Heap), "", "", "")
		row("1", "", "goroutine stacks per stream", kib(i.Bridge.Stack), "", "", "")
		row("1", "", "goroutines per stream", fmt.Sprintf("%.2f", i.Bridge.Goroutines), "", "", "")
	}
	if br := r.Bridge; br != nil {
		var wr FanOutResult
		if r.Wire != nil {
			wr = *r.Wire
		}
		ratio := ""
		met := false
		if wr.Max.Offered > 0 {
			ratio = fmt.Sprintf(" (%.0f%% of wire)", 100*br.Max.Achieved/wr.Max.Achieved)
			met = br.Max.Achieved >= 0.8*wr.Max.Achieved
		}
		row("2", "fan-out, 10 streams per tenant", "sustained deliveries, zero drops", rate(br.Max.Achieved)+ratio, rate(wr.Max.Achieved), "≥ 80% of wire", verdict(met))
		row("2", "", fmt.Sprintf("latency p50 / p99 / p99.9 at half max (%s vs %s)", rate(br.Half.Offered), rate(wr.Half.Offered)),
			latencies(br.Half.Latency), latencies(wr.Half.Latency), "p99 ≤ 10 ms", verdict(br.Half.Latency.Count > 0 && br.Half.Latency.P99 <= 10*time.Millisecond))
		row("2", "", "latency p50 / p99 / p99.9 at max", latencies(br.Max.Latency), latencies(wr.Max.Latency), "", "")
		row("2", "", "server CPU per 100,000 deliveries (at max)", ms(br.Max.CPUPer100k()), ms(wr.Max.CPUPer100k()), "", "")
		// CPU per delivery against the wire's at the wire's own sustained rate would need the
		// bridge to reach it; compared here at the highest rate both passed.
		if bs, ws, ok := commonStep(br, &wr); ok {
			row("2", "", fmt.Sprintf("server CPU per 100,000 deliveries at %s (highest rate both sustained)", rate(bs.Offered)),
				ms(bs.CPUPer100k())+fmt.Sprintf(" (%.2f× wire)", float64(bs.CPUPer100k())/float64(ws.CPUPer100k())), ms(ws.CPUPer100k()), "≤ 1.3× wire",
				verdict(float64(bs.CPUPer100k()) <= 1.3*float64(ws.CPUPer100k())))
		}
	}
	if bc := r.Broadcast; bc != nil {
		wire, ratio := "—", ""
		met := false
		if bc.WireToLast.Count > 0 {
			wire = ms(bc.WireToLast.P99)
			ratio = fmt.Sprintf(", %.2f× wire", float64(bc.ToLast.P99)/float64(bc.WireToLast.P99))
			met = bc.Incomplete == 0 && float64(bc.ToLast.P99) <= 1.1*float64(bc.WireToLast.P99)
		}
		row("3", fmt.Sprintf("broadcast, 1 event → %d streams (%d reps)", bc.Conns, bc.Reps), "time to last receipt p99 (p50)",
			ms(bc.ToLast.P99)+" ("+ms(bc.ToLast.P50)+ratio+")", wire, "≤ 1.1× wire", verdict(met))
	}
	if c := r.Churn; c != nil {
		row("4", fmt.Sprintf("churn, %d connects", c.Connects), "authenticated connects/s", rate(c.Rate)+fmt.Sprintf(" (%d failed)", c.Failed), "", "≥ 5,000/s", verdict(c.Failed == 0 && c.Rate >= 5000))
		row("4", "", "heap in use: baseline → half → end", fmt.Sprintf("%d → %d → %d KiB", c.Baseline.HeapInuse>>10, c.Half.HeapInuse>>10, c.After.HeapInuse>>10), "", "back to baseline",
			verdict(c.Back()))
		row("4", "", "RSS: baseline → half → end", fmt.Sprintf("%d → %d → %d KiB", c.Baseline.RSS>>10, c.Half.RSS>>10, c.After.RSS>>10), "", "", "")
		row("4", "", "goroutines: baseline → end", fmt.Sprintf("%d → %d", c.Baseline.Goroutines, c.After.Goroutines), "", "", "")
	}
	for _, cells := range r.Operator {
		row(cells...)
	}
	if c := r.Consumer; c != nil {
		prefetch := "default prefetch"
		if c.Prefetch != "" {
			prefetch = "prefetch " + c.Prefetch
		}
		row("6", fmt.Sprintf("consumer alone, backlog of %d events, no clients (%s)", c.Events, prefetch), "events/s from RabbitMQ into the hub",
			rate(c.Rate), "", "≥ 20,000/s", verdict(c.Complete && c.Rate >= 20000))
		row("6", "", "bridge CPU per consumed event", fmt.Sprintf("%.1f µs", c.CPUPerEvent()), "", "", "")
	}
	if s := r.Snapshot; s != nil {
		row("7", fmt.Sprintf("snapshot, %d keys (~230-byte events)", s.Keys), "memory per key: counted by the store / Go heap growth",
			fmt.Sprintf("%.0f B / %.0f B", s.CountedPerKey, s.HeapPerKey), "", "", "")
		row("7", "", "one client: connect → snapshot-end", ms(s.OneClient), "", "", "")
		row("7", "", fmt.Sprintf("%d clients at once: start → last snapshot-end (per client p50 / p99)", s.Clients),
			fmt.Sprintf("%s (%s / %s), %d failed", ms(s.AllClients), ms(s.PerClient.P50), ms(s.PerClient.P99), s.Failed), "", "", "")
		row("7", "", fmt.Sprintf("live fan-out, %d streams × %s: latency p50 / p99 alone → during the snapshots", s.LiveStreams, rate(s.LiveRate)),
			latencies(s.LiveAlone)+" → "+latencies(s.LiveDuring)+fmt.Sprintf(" (%d/%d received)", s.LiveDeliveries[0], s.LiveDeliveries[1]), "", "", "")
	}
	if br := r.Bridge; br != nil {
		b.WriteString("\nFan-out steps (offered → achieved deliveries/s, drops, p99, CPU per 100k):\n\n| server | offered | achieved | received/expected | drops | p50 | p99 | p99.9 | CPU/100k | pass |\n|---|---|---|---|---|---|---|---|---|---|\n")
		steps := func(name string, res *FanOutResult) {
			if res == nil {
				return
			}
			for _, s := range append(append([]Step(nil), res.Steps...), res.Half) {
				if s.Offered == 0 {
					continue
				}
				pass := fmt.Sprint(s.Pass)
				if s.PubBehind {
					pass += " (sender behind)"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %d/%d | %d | %s | %s | %s | %s | %s |\n", name, rate(s.Offered), rate(s.Achieved),
					s.Received, s.Expected, s.Drops, ms(s.Latency.P50), ms(s.Latency.P99), ms(s.Latency.P999), ms(s.CPUPer100k()), pass)
			}
		}
		steps("bridge", r.Bridge)
		steps("wire", r.Wire)
	}
	for _, n := range r.Notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}

// Back reports whether memory returned to the baseline after the churn: heap in use within
// 4 MiB of it (GC timing) and no goroutine left behind (2 of slack for the bridge's own
// transient ones, e.g. the lag sampler or a metrics scrape in flight).
func (c ChurnResult) Back() bool {
	return c.After.HeapInuse <= c.Baseline.HeapInuse+4<<20 && c.After.Goroutines <= c.Baseline.Goroutines+2
}

// commonStep returns the bridge's and the wire's steps at the highest offered rate both passed.
func commonStep(br, wr *FanOutResult) (Step, Step, bool) {
	for i := len(br.Steps) - 1; i >= 0; i-- {
		if !br.Steps[i].Pass {
			continue
		}
		for _, w := range wr.Steps {
			if w.Pass && w.Offered == br.Steps[i].Offered && w.CPU > 0 {
				return br.Steps[i], w, true
			}
		}
	}
	return Step{}, Step{}, false
}

func latencies(s Summary) string {
	if s.Count == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s", ms(s.P50), ms(s.P99), ms(s.P999))
}

// Result markers delimit the generated part of docs/performance.md.
const (
	BeginMarker = "<!-- bench:results:begin (generated by make bench) -->"
	EndMarker   = "<!-- bench:results:end -->"
)

// ReplaceResults puts section between the markers of doc (appending markers when missing).
func ReplaceResults(doc, section string) string {
	block := BeginMarker + "\n" + section + EndMarker
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	if i < 0 || j < i {
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		return doc + "\n" + block + "\n"
	}
	return doc[:i] + block + doc[j+len(EndMarker):]
}
