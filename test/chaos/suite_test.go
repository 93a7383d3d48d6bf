package chaos

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// Targets of issue 14 (docs/reliability.md).
const (
	// deliveringAgain: back to delivering after the broker accepts connections again.
	deliveringAgain = 2 * time.Second
	// deadConnection: a broker connection that stopped carrying anything is noticed.
	deadConnection = 5 * time.Second
	// cutOffSilence: clients of a stream replica that lost the broker (or died) are silent at
	// most this long while another replica is healthy.
	cutOffSilence = 8 * time.Second
)

// TestChaos runs every scenario against real bridge binaries and a RabbitMQ node of its own,
// then prints the figures as markdown (also written to $CHAOS_REPORT when set). Scenarios run
// one after the other: each injects its faults into the one broker. It never skips: the
// default profile is the short one (about 2.5 minutes), also under go test -short.
func TestChaos(t *testing.T) {
	profile, err := ProfileNamed(os.Getenv("CHAOS_PROFILE"))
	if err != nil {
		t.Fatal(err)
	}
	node := rabbitmqtest.Dedicated(t, "chaos-suite")
	u, err := url.Parse(node.URI)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{
		env: &Env{Binary: clitest.Build(t, clitest.BridgePackage, ""), AMQPURL: node.URI, BrokerAddr: u.Host,
			Secret: strings.Repeat("chaos-secret-", 3), LogDir: logDir(t)},
		node:    node,
		profile: profile,
		report:  &Report{Profile: profile.Name, Started: time.Now()},
	}
	t.Logf("profile %s; bridge logs in %s", profile.Name, s.env.LogDir)

	t.Run("stream-replica-kills", s.streamReplicaKills)
	t.Run("broker-restart", s.brokerRestart)
	t.Run("connection-reset", s.connectionReset)
	t.Run("blackhole", s.blackhole)
	t.Run("bridge-kill", s.bridgeKill)
	t.Run("bridge-drain", s.bridgeDrain)
	t.Run("slow-clients", s.slowClients)
	t.Run("soak", s.soak)

	md := s.report.Markdown()
	fmt.Println(md)
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, c := range s.report.Failed() {
		t.Logf("missed: %s / %s: %s: target %s, measured %s", c.Scenario, c.Deployment, c.What, c.Target, c.Measured)
	}
}

type suite struct {
	env     *Env
	node    *rabbitmqtest.Node
	profile Profile
	report  *Report
}

// logDir is $CHAOS_LOG_DIR (kept after the run) or a temporary directory.
func logDir(t *testing.T) string {
	if dir := os.Getenv("CHAOS_LOG_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// scenario is one subtest's bookkeeping: its deployments and its report entries.
type scenario struct {
	t           *testing.T
	name        string
	s           *suite
	deployments []*Deployment
}

func (s *suite) begin(t *testing.T, name string) *scenario {
	sc := &scenario{t: t, name: name, s: s}
	t.Cleanup(func() { t.Logf("%s:\n%s", name, s.report.ScenarioText(name)) })
	return sc
}

// deploy starts a deployment for this scenario; it is closed when the subtest ends.
func (sc *scenario) deploy(spec Spec) *Deployment {
	sc.t.Helper()
	d, err := sc.s.env.Deploy(sc.name, spec)
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.t.Cleanup(d.Close)
	sc.deployments = append(sc.deployments, d)
	return d
}

// check records a target; a missed one fails the subtest (and the suite) but the scenario goes
// on, so every figure is measured.
func (sc *scenario) check(d *Deployment, what, target, measured string, ok bool) {
	sc.t.Helper()
	sc.s.report.AddCheck(Check{Scenario: sc.name, Deployment: d.Name, What: what, Target: target, Measured: measured, OK: ok})
	if !ok {
		sc.t.Errorf("%s: %s: target %s, measured %s (bridge logs: %s)", d.Name, what, target, measured, d.logs())
	}
}

// figure records a measure without a target.
func (sc *scenario) figure(d *Deployment, what, measured string) {
	sc.s.report.AddCheck(Check{Scenario: sc.name, Deployment: d.Name, What: what, Measured: measured, OK: true})
}

// within checks that a recovery took at most limit; seen false means it never happened within
// the scenario's deadline.
func (sc *scenario) within(d *Deployment, what string, limit, took time.Duration, seen bool) {
	sc.t.Helper()
	measured := "not within the scenario"
	if seen {
		measured = seconds(took)
	}
	sc.check(d, what, "≤ "+seconds(limit), measured, seen && took <= limit)
}

// progress waits until every fast client of d receives new events; it fails the subtest when
// they do not within timeout.
func (sc *scenario) progress(d *Deployment, timeout time.Duration, after string) {
	sc.t.Helper()
	if !d.WaitProgress(timeout) {
		sc.t.Fatalf("%s: clients got no new event within %s after %s (bridge logs: %s)", d.Name, timeout, after, d.logs())
	}
}

// settle stops publishing (for every deployment of the scenario: the load ends together),
// waits for d's last events to arrive, tallies its deliveries and records the row and the
// checks every scenario shares: nothing lost silently, no client gave up for good. owed is the
// classic/quorum down window, if any.
func (sc *scenario) settle(d *Deployment, owed *DownWindow) (fast, slow Counts) {
	sc.t.Helper()
	for _, each := range sc.deployments {
		each.StopPublishing()
	}
	d.Quiesce(30 * time.Second)
	fast, slow, failed := d.Tally(owed)
	published, confirmed := d.Publisher().Count()
	sc.s.report.AddRow(Row{Scenario: sc.name, Deployment: d.Name, Published: published, Confirmed: confirmed, Counts: fast})
	if slow.Clients > 0 {
		sc.s.report.AddRow(Row{Scenario: sc.name, Deployment: d.Name + " (slow clients)", Published: published, Confirmed: confirmed, Counts: slow})
	}
	all := fast
	all.add(slow)
	if all.Expected == 0 {
		sc.t.Fatalf("%s: no event was owed to any client: the scenario measured nothing", d.Name)
	}
	sc.check(d, "events lost without a gap", "0", fmt.Sprint(all.LostSilent), all.LostSilent == 0)
	if n := d.ReachedNoClient(); n > 0 {
		sc.figure(d, "confirmed events that reached no client at all", fmt.Sprint(n))
	}
	sc.check(d, "clients that gave up (non-200)", "0", fmt.Sprint(len(failed)), len(failed) == 0)
	for _, f := range failed {
		sc.t.Logf("%s: %s", d.Name, f)
	}
	return fast, slow
}

// silence checks that no client in silences was silent longer than limit, reporting the median
// too.
func (sc *scenario) silence(d *Deployment, what string, limit time.Duration, silences []time.Duration) {
	sc.t.Helper()
	if len(silences) == 0 {
		sc.t.Fatalf("%s: %s: no client to measure", d.Name, what)
	}
	slices.Sort(silences)
	worst := silences[len(silences)-1]
	sc.check(d, what, "longest ≤ "+seconds(limit), fmt.Sprintf("longest %s, median %s (%d clients)",
		seconds(worst), seconds(silences[len(silences)/2]), len(silences)), worst <= limit)
}

// exact checks the stream-mode guarantee: every owed event arrived exactly once, in order.
func (sc *scenario) exact(d *Deployment, c Counts) {
	sc.t.Helper()
	sc.check(d, "exact resume: lost, duplicated, reordered", "0, 0, 0",
		fmt.Sprintf("%d, %d, %d", c.Lost(), c.Duplicated, c.Reordered), c.Lost() == 0 && c.Duplicated == 0 && c.Reordered == 0)
}
