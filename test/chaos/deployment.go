package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// Env is what every deployment of a run shares: the bridge binary, the broker, the JWT secret
// the bridges verify client tokens with, and where the bridges' logs go.
type Env struct {
	Binary string
	// AMQPURL is the broker's AMQP URI (guest credentials, the suite's own node).
	AMQPURL string
	// BrokerAddr is the broker's AMQP host:port, the target of each replica's proxy.
	BrokerAddr string
	Secret     string
	LogDir     string
}

// Spec describes one EventStream under test: its queue, bridge replicas, clients and load.
type Spec struct {
	// Name labels the deployment in the figures, e.g. "stream" or "classic".
	Name      string
	QueueType string // classic, quorum or stream
	Replicas  int
	// Overflow and BufferSize set the bridge's --overflow and --buffer-size ("", 0: defaults).
	Overflow   string
	BufferSize int
	// Clients fast clients and SlowClients slow ones (reading an event every SlowReadDelay),
	// spread round-robin over Tenants tenants and over the replicas.
	Clients, SlowClients int
	SlowReadDelay        time.Duration
	Tenants, Jobs        int
	// Rate is the publisher's events per second (over all tenants).
	Rate float64
}

// ReplaySize is the bridges' --replay-size (their default) and Prefetch their --prefetch: a
// killed classic bridge's unacked deliveries (at most Prefetch) come back first and take ring
// slots, so a reconnecting client is owed the last ReplaySize-Prefetch events it missed.
const (
	ReplaySize = 1000
	Prefetch   = 100
)

// Deployment is a running EventStream under test: bridge replicas of the real binary on their
// own queue and exchange, each reaching the broker through its own Proxy and keeping its
// addresses across restarts; counting clients; and a confirming publisher.
type Deployment struct {
	Spec
	Queue, Exchange, Run string

	env       *Env
	replicas  []*Replica
	clients   []*Client
	slow      []bool
	tenantOf  []int
	publisher *Publisher

	clientsCtx               context.Context
	stopClients, stopPublish context.CancelFunc
	publishDone              chan struct{}
}

// Replica is one bridge process slot: a fixed SSE and operations address, a proxy to the broker
// and a readiness watch; the process in it can be killed and started again.
type Replica struct {
	Index   int
	Proxy   *Proxy
	Addr    string
	OpsAddr string
	Ready   *readinessWatch
	logPath string
	// IdleGoroutines is the first process's go_goroutines before any client connected.
	IdleGoroutines float64

	mu   sync.Mutex
	proc *bench.BridgeProcess
	log  *os.File // the running process's stderr
}

// take removes the running process from the slot; the caller ends it, then closes its log.
func (r *Replica) take() (*bench.BridgeProcess, *os.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	proc, log := r.proc, r.log
	r.proc, r.log = nil, nil
	return proc, log
}

// Deploy starts spec's replicas (each ready), its clients (each subscribed), and prepares its
// publisher; StartPublishing starts the load. label names the scenario in queue names and log
// files. Close stops everything and deletes the topology.
func (e *Env) Deploy(label string, spec Spec) (*Deployment, error) {
	if spec.Tenants == 0 {
		spec.Tenants = 4
	}
	if spec.Jobs == 0 {
		spec.Jobs = 4
	}
	if spec.Replicas == 0 {
		spec.Replicas = 1
	}
	suffix := events.NewID()[:6]
	name := slug(label) + "." + slug(spec.Name)
	d := &Deployment{
		Spec:     spec,
		Queue:    "chaos." + name + "." + suffix,
		Exchange: "chaos.x." + name + "." + suffix,
		Run:      "r" + suffix,
		env:      e,
	}
	d.publisher = NewPublisher(e.AMQPURL, d.Exchange, d.Run, spec.Tenants, spec.Jobs)
	d.clientsCtx, d.stopClients = context.WithCancel(context.Background())
	for i := 0; i < spec.Replicas; i++ {
		r, err := e.newReplica(name, i)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.replicas = append(d.replicas, r)
		if err := d.StartReplica(i); err != nil {
			d.Close()
			return nil, err
		}
	}
	for _, r := range d.replicas {
		m, err := r.Metrics()
		if err != nil {
			d.Close()
			return nil, err
		}
		r.IdleGoroutines = m["go_goroutines"]
	}
	if err := d.startClients(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (e *Env) newReplica(name string, index int) (*Replica, error) {
	proxy, err := NewProxy(e.BrokerAddr)
	if err != nil {
		return nil, err
	}
	ports := make([]string, 2)
	for i := range ports {
		port, err := bench.FreePort()
		if err != nil {
			proxy.Close()
			return nil, err
		}
		ports[i] = "127.0.0.1:" + strconv.Itoa(port)
	}
	r := &Replica{Index: index, Proxy: proxy, Addr: ports[0], OpsAddr: ports[1],
		logPath: filepath.Join(e.LogDir, fmt.Sprintf("%s.%d.log", name, index))}
	r.Ready = watchReadiness(r.OpsAddr)
	return r, nil
}

// StartReplica starts the bridge of replica i (again) on its addresses and waits until it is
// ready.
func (d *Deployment) StartReplica(i int) error {
	r := d.replicas[i]
	log, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "=== start at %s on the suite's clock\n", now())
	extra := []string{"--queue-type=" + d.QueueType, "--log-level=info", "--log-format=text",
		"--replay-size=" + strconv.Itoa(ReplaySize), "--prefetch=" + strconv.Itoa(Prefetch)}
	if d.Overflow != "" {
		extra = append(extra, "--overflow="+d.Overflow)
	}
	if d.BufferSize > 0 {
		extra = append(extra, "--buffer-size="+strconv.Itoa(d.BufferSize))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc, err := bench.StartBridge(ctx, bench.BridgeOptions{
		Binary: d.env.Binary, AMQPURL: "amqp://guest:guest@" + r.Proxy.Addr() + "/",
		Exchange: d.Exchange, Queue: d.Queue, JWTSecret: d.env.Secret,
		Addr: r.Addr, OpsAddr: r.OpsAddr, Extra: extra, Log: log,
	})
	if err != nil {
		log.Close()
		return fmt.Errorf("start %s replica %d (log %s): %w", d.Name, i, r.logPath, err)
	}
	r.mu.Lock()
	r.proc, r.log = proc, log
	r.mu.Unlock()
	return nil
}

// KillReplica kills replica i's bridge with SIGKILL and returns when the process is gone.
func (d *Deployment) KillReplica(i int) instant {
	proc, log := d.replicas[i].take()
	if proc != nil {
		proc.Kill()
		log.Close()
	}
	return now()
}

// TerminateReplica sends SIGTERM to replica i's bridge and waits for it to drain and exit. It
// returns when the signal was sent and the exit error (nil: status 0).
func (d *Deployment) TerminateReplica(i int) (instant, error) {
	proc, log := d.replicas[i].take()
	at := now()
	if proc == nil {
		return at, nil
	}
	err := proc.Terminate(30 * time.Second)
	log.Close()
	return at, err
}

// Replica returns replica i.
func (d *Deployment) Replica(i int) *Replica { return d.replicas[i] }

// Replicas returns the replicas.
func (d *Deployment) Replicas() []*Replica { return d.replicas }

// PID returns the process id of replica i's bridge (0 when down).
func (r *Replica) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return 0
	}
	return r.proc.PID()
}

// Metrics scrapes replica r's /metrics (values summed over labels).
func (r *Replica) Metrics() (map[string]float64, error) {
	return bench.Scrape("http://" + r.OpsAddr + "/metrics")
}

func (d *Deployment) startClients() error {
	n := d.Clients + d.SlowClients
	for i := 0; i < n; i++ {
		tenant := i % d.Tenants
		token := bench.HS256Token([]byte(d.env.Secret), []string{bench.Tenant(tenant)}, 4*time.Hour)
		urls := make([]string, len(d.replicas))
		for j, r := range d.replicas {
			urls[j] = "http://" + r.Addr + "/api/v1/events?team_id=" + bench.Tenant(tenant) + "&access_token=" + token
		}
		slow := i >= d.Clients
		cfg := ClientConfig{URLs: urls, First: i, Run: d.Run}
		if slow {
			cfg.ReadDelay = d.SlowReadDelay
		}
		c := NewClient(cfg)
		c.Start(d.clientsCtx)
		d.clients = append(d.clients, c)
		d.slow = append(d.slow, slow)
		d.tenantOf = append(d.tenantOf, tenant)
	}
	var last string
	if !waitFor(60*time.Second, func() bool {
		var open float64
		for _, r := range d.replicas {
			m, err := r.Metrics()
			if err != nil {
				last = err.Error()
				return false
			}
			open += m[metrics.Clients]
		}
		last = fmt.Sprintf("%v of %d streams open", open, n)
		return int(open) == n
	}) {
		for _, c := range d.clients {
			if f := c.Fatal(); f != "" {
				return fmt.Errorf("%s: client gave up: %s", d.Name, f)
			}
		}
		return fmt.Errorf("%s: clients not subscribed within 60s: %s", d.Name, last)
	}
	return nil
}

// StartPublishing starts the publisher at the spec's rate.
func (d *Deployment) StartPublishing() {
	ctx, cancel := context.WithCancel(context.Background())
	d.stopPublish, d.publishDone = cancel, make(chan struct{})
	go func() {
		defer close(d.publishDone)
		d.publisher.Run(ctx, d.Rate)
	}()
}

// StopPublishing stops the publisher and waits for its last publish to be answered.
func (d *Deployment) StopPublishing() {
	if d.stopPublish == nil {
		return
	}
	d.stopPublish()
	<-d.publishDone
	d.stopPublish = nil
}

// Publisher returns the deployment's publisher.
func (d *Deployment) Publisher() *Publisher { return d.publisher }

// WaitProgress waits until every fast client received an event published after this call: the
// deployment delivers again. It returns false after timeout.
func (d *Deployment) WaitProgress(timeout time.Duration) bool {
	attempted, _ := d.publisher.Count()
	target := int64(attempted)
	return waitFor(timeout, func() bool {
		for i, c := range d.clients {
			if !d.slow[i] && c.MaxSeq() < target {
				return false
			}
		}
		return true
	})
}

// Quiesce waits, after StopPublishing, until every client received the last confirmed event of
// its tenant, or timeout: what has not arrived then is counted as lost.
func (d *Deployment) Quiesce(timeout time.Duration) bool {
	last := make([]int64, d.Tenants)
	for i := range last {
		last[i] = -1
	}
	for _, r := range d.publisher.Records() {
		if r.Confirmed {
			last[r.Tenant] = r.Seq
		}
	}
	return waitFor(timeout, func() bool {
		for i, c := range d.clients {
			if c.Fatal() == "" && c.MaxSeq() < last[d.tenantOf[i]] {
				return false
			}
		}
		return true
	})
}

// FirstDeliveryAfter returns how long after t the slowest fast client received its first event
// published at or after t (false: some client got none): the time to deliver again after a
// fault, not counting events that were already on their way.
func (d *Deployment) FirstDeliveryAfter(t instant) (time.Duration, bool) {
	records := d.publisher.Records()
	first := int64(sort.Search(len(records), func(i int) bool { return records[i].Start >= t }))
	var worst time.Duration
	for i, c := range d.clients {
		if d.slow[i] {
			continue
		}
		receipts, _ := c.Snapshot()
		at, ok := firstArrivalFrom(receipts, first)
		if !ok {
			return 0, false
		}
		worst = max(worst, at-t)
	}
	return worst, true
}

// Silences returns, for each of the given clients, the longest time it went without an event
// within [from, to], counting from `from` and up to `to`.
func (d *Deployment) Silences(from, to instant, clients []int) []time.Duration {
	out := make([]time.Duration, 0, len(clients))
	for _, i := range clients {
		receipts, _ := d.clients[i].Snapshot()
		out = append(out, maxSilence(receipts, from, to))
	}
	return out
}

// FastClients returns the indexes of the fast clients.
func (d *Deployment) FastClients() []int {
	var fast []int
	for i := range d.clients {
		if !d.slow[i] {
			fast = append(fast, i)
		}
	}
	return fast
}

// NotReadyAfter returns how long after t replica i was first seen not ready (false: never).
func (d *Deployment) NotReadyAfter(i int, t instant) (time.Duration, bool) {
	at, ok := d.replicas[i].Ready.FirstAfter(t, false)
	return at - t, ok
}

// ClientsOn returns the indexes of the fast clients streaming from replica i at t.
func (d *Deployment) ClientsOn(i int, t instant) []int {
	var on []int
	for j, c := range d.clients {
		if d.slow[j] {
			continue
		}
		_, conns := c.Snapshot()
		if OpenOn(conns, t) == i {
			on = append(on, j)
		}
	}
	return on
}

// StopClients disconnects every client and waits for them.
func (d *Deployment) StopClients() {
	d.stopClients()
	for _, c := range d.clients {
		<-c.Done()
	}
}

// Close stops the publisher, the clients and the bridges, closes the proxies and deletes the
// deployment's queues and exchanges.
func (d *Deployment) Close() {
	d.StopPublishing()
	d.StopClients()
	for _, r := range d.replicas {
		if proc, log := r.take(); proc != nil {
			proc.Stop()
			log.Close()
		}
		r.Ready.Stop()
		r.Proxy.Close()
	}
	rabbitmqtest.DeleteTopology(d.env.AMQPURL, d.Queue, d.Exchange)
}

// slug turns a label into lowercase letters, digits and dashes, for queue and file names.
func slug(label string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(label) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// logs names the deployment's bridge log files (for failure messages).
func (d *Deployment) logs() string {
	var paths []string
	for _, r := range d.replicas {
		paths = append(paths, r.logPath)
	}
	return strings.Join(paths, " ")
}

// Tally classifies what the deployment's clients got, fast and slow clients apart; owed, when
// set, is the down-window target of a classic/quorum bridge fault. failed lists the clients that
// gave up for good, with the reason.
func (d *Deployment) Tally(owed *DownWindow) (fast, slow Counts, failed []string) {
	records := d.publisher.Records()
	for i, c := range d.clients {
		receipts, conns := c.Snapshot()
		counts := tallyClient(records, clientRun{tenant: d.tenantOf[i], receipts: receipts, conns: conns,
			lastValue: d.Overflow == "lastValue", owed: owed}, d.publisher.JobOf)
		if d.slow[i] {
			slow.add(counts)
		} else {
			fast.add(counts)
		}
		if f := c.Fatal(); f != "" {
			failed = append(failed, f)
		}
	}
	return fast, slow, failed
}

// ReachedNoClient counts confirmed events owed to at least one client that no client received:
// lost before any bridge had them (a confirm for a message the broker could not route), as
// opposed to losses on the way to some clients.
func (d *Deployment) ReachedNoClient() int {
	records := d.publisher.Records()
	owedTo := make([]bool, d.Tenants)
	for _, t := range d.tenantOf {
		owedTo[t] = true
	}
	received := make([]bool, len(records))
	for _, c := range d.clients {
		receipts, _ := c.Snapshot()
		for _, r := range receipts {
			if r.Seq >= 0 && r.Seq < int64(len(received)) {
				received[r.Seq] = true
			}
		}
	}
	n := 0
	for _, r := range records {
		if r.Confirmed && owedTo[r.Tenant] && !received[r.Seq] {
			n++
		}
	}
	return n
}

// PublishMalformed publishes n messages the bridge must dead-letter (a body that is not JSON,
// on a routing key of the template) and returns how many the broker confirmed.
func (d *Deployment) PublishMalformed(n int) (int, error) {
	pub, err := publish.Dial(d.env.AMQPURL, nil, publish.PublisherConfig{Exchange: d.Exchange})
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	confirmed := 0
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := pub.Publish(ctx, "team."+bench.Tenant(0)+".job.0.status", []byte("not json "+strconv.Itoa(i)), publish.PublishOptions{})
		cancel()
		if err != nil {
			return confirmed, fmt.Errorf("publish malformed message %d: %w", i, err)
		}
		confirmed++
	}
	return confirmed, nil
}

// DeadLettered returns the number of messages ready in the deployment's dead-letter queue.
func (d *Deployment) DeadLettered() (int, error) {
	conn, err := amqp091.Dial(d.env.AMQPURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	dlq := contract.DeadLetterQueue(d.Queue)
	q, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("passive declare %q: %w", dlq, err)
	}
	return q.Messages, nil
}
