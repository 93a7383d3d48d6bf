package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

type operatorFlags struct {
	streams int
	quiet   time.Duration
	binary  string
	args    string
	crdDir  string

	readyTimeout time.Duration
}

func (o *operatorFlags) bind(fs *flag.FlagSet) {
	fs.IntVar(&o.streams, "operator-streams", 500, "EventStreams applied at once in the operator scenario")
	fs.DurationVar(&o.quiet, "operator-quiet", 2*time.Minute, "quiet period after all are TopologyReady, counting writes to the EventStreams (the issue's full run: 5m)")
	fs.StringVar(&o.binary, "operator", "bin/operator", "the operator binary")
	fs.StringVar(&o.args, "operator-flags", "", "extra operator flags, space-separated (default: the binary's defaults)")
	fs.DurationVar(&o.readyTimeout, "operator-ready-timeout", 12*time.Minute, "how long to wait for all TopologyReady; the quiet period starts then anyway")
	fs.StringVar(&o.crdDir, "crd-dir", "", "directory of the CRDs to install (default: config/crd/bases of this checkout)")
}

// runOperator is scenario 5: the operator binary against an envtest API server and the private
// RabbitMQ node. envtest has no Deployment controller, so BridgeReady (and Ready) never become
// true: the scenario waits for TopologyReady.
func runOperator(ctx context.Context, o operatorFlags) ([][]string, []string, error) {
	amqpURI, mgmtURI := os.Getenv("RABBITMQ_TEST_URI"), os.Getenv("RABBITMQ_TEST_MANAGEMENT_URI")
	if amqpURI == "" || mgmtURI == "" {
		return nil, nil, errors.New("RABBITMQ_TEST_URI and RABBITMQ_TEST_MANAGEMENT_URI must be set (eval \"$(hack/rabbitmq.sh env)\")")
	}
	assets, err := kubetest.AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: operator: "+format+"\n", args...) }

	crdDir := o.crdDir
	if crdDir == "" {
		crdDir = kubetest.CRDDir()
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	// envtest's default service range (a /24) cannot hold a bridge Service per stream for 500
	// streams; the failing Services would keep streams in error backoff.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // a control plane that started before the failure (e.g. CRD install)
		return nil, nil, fmt.Errorf("start envtest: %w", err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.AddUser(envtest.User{Name: "bench-operator", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "bench-operator-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, nil, err
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = esv1.AddToScheme(scheme)
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, err
	}
	const ns = "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, nil, err
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rabbitmq"},
		StringData: map[string]string{"uri": amqpURI, "managementURI": mgmtURI}}); err != nil {
		return nil, nil, err
	}

	// Registered before the operator's stop so that it runs after it: a running operator would
	// declare the deleted topology again.
	prefix := "bench-op-" + strconv.FormatInt(time.Now().Unix(), 36)
	defer cleanupBroker(mgmtURI, prefix, logf)

	metricsPort, err := bench.FreePort()
	if err != nil {
		return nil, nil, err
	}
	probePort, err := bench.FreePort()
	if err != nil {
		return nil, nil, err
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	args := []string{"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(metricsPort),
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(probePort), "--bridge-image", "bench.invalid/bridge:bench"}
	args = append(args, strings.Fields(o.args)...)
	cmd := exec.Command(o.binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	logFile, err := os.Create(filepath.Join(dir, "operator.log"))
	if err != nil {
		return nil, nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start operator: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitFor(ctx, 60*time.Second, func() bool { _, err := bench.Scrape(metricsURL); return err == nil }); err != nil {
		return nil, nil, fmt.Errorf("operator metrics never served: %w", err)
	}
	m0, _ := bench.Scrape(metricsURL)
	calls := func() float64 {
		m, _ := bench.Scrape(metricsURL)
		return m["eventstream_operator_broker_requests_total"] - m0["eventstream_operator_broker_requests_total"]
	}
	callsByOperation := func() map[string]float64 {
		m, _ := bench.ScrapeByLabel(metricsURL, "eventstream_operator_broker_requests_total", "operation")
		return m
	}
	apiRequestsByMethod := func() map[string]float64 {
		m, _ := bench.ScrapeByLabel(metricsURL, "rest_client_requests_total", "method")
		return m
	}
	ops0, api0 := callsByOperation(), apiRequestsByMethod()
	loadStart := bench.LoadAverage()

	logf("applying %d EventStreams", o.streams)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.streams {
					return
				}
				name := fmt.Sprintf("%s-%d", prefix, i)
				es := &esv1.EventStream{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("s%d", i)},
					Spec: esv1.EventStreamSpec{
						RabbitMQ: esv1.RabbitMQConnection{ConnectionSecret: corev1.LocalObjectReference{Name: "rabbitmq"}},
						Exchange: esv1.ExchangeSpec{Name: esv1.BrokerObjectName(name + ".topic")},
						Queue:    esv1.QueueSpec{Name: esv1.BrokerObjectName(name)},
						Bridge:   esv1.BridgeSpec{Auth: esv1.BridgeAuthSpec{Mode: esv1.AuthModeNone}},
					},
				}
				if err := c.Create(ctx, es); err != nil {
					errs <- err
					next.Store(int64(o.streams))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, nil, fmt.Errorf("create EventStream: %w", err)
	}
	applied := time.Since(start)

	var list esv1.EventStreamList
	ready := 0
	lastLog := time.Now()
	err = waitFor(ctx, o.readyTimeout, func() bool {
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false
		}
		ready = 0
		for i := range list.Items {
			if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, esv1.ConditionTopologyReady) {
				ready++
			}
		}
		if time.Since(lastLog) > 10*time.Second {
			logf("%d/%d TopologyReady after %s (%.0f management API calls)", ready, o.streams, time.Since(start).Round(time.Second), calls())
			lastLog = time.Now()
		}
		return ready == o.streams
	})
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	readyAt := time.Since(start)
	callsReady := calls()
	opsReady, apiReady := callsByOperation(), apiRequestsByMethod()
	loadReady := bench.LoadAverage()
	readyFigure := readyAt.Round(time.Millisecond).String()
	var notes []string
	if err != nil {
		readyFigure = fmt.Sprintf("**%d/%d** after %s", ready, o.streams, readyAt.Round(time.Second))
		for i := range list.Items {
			if c := meta.FindStatusCondition(list.Items[i].Status.Conditions, esv1.ConditionTopologyReady); c == nil || c.Status != metav1.ConditionTrue {
				if len(notes) < 5 {
					reason := "no condition"
					if c != nil {
						reason = c.Reason + ": " + c.Message
					}
					notes = append(notes, fmt.Sprintf("Not TopologyReady at the deadline: %s (%.200s).", list.Items[i].Name, reason))
				}
			}
		}
	}
	logf("%d/%d TopologyReady after %s, %.0f management API calls", ready, o.streams, readyAt.Round(time.Millisecond), callsReady)

	// Quiet period: nothing changes; every MODIFIED event on an EventStream is a write. The
	// watch starts from a list made after the counters above were read, so a write still in
	// flight from the creation (the readiness poll's list is older) is not taken for a write
	// in the quiet period without the Kubernetes API writes showing it too.
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	w, err := c.Watch(ctx, &esv1.EventStreamList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		return nil, nil, err
	}
	quietCalls0 := calls()
	writes := 0
	// What the writes changed (the first few), so a write in the quiet period can be explained.
	last := map[string]*esv1.EventStream{}
	for i := range list.Items {
		last[list.Items[i].Name] = &list.Items[i]
	}
	var changes []string
	timer := time.NewTimer(o.quiet)
	logf("quiet period of %s", o.quiet)
quiet:
	for {
		select {
		case <-timer.C:
			break quiet
		case <-ctx.Done():
			w.Stop()
			return nil, nil, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The API server ends watches after a while; resume from the last version seen.
				w, err = c.Watch(ctx, &esv1.EventStreamList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
				if err != nil {
					return nil, nil, err
				}
				continue
			}
			if ev.Type == watch.Modified {
				writes++
				if es, ok := ev.Object.(*esv1.EventStream); ok {
					list.ResourceVersion = es.ResourceVersion
					if prev, ok := last[es.Name]; ok && len(changes) < 5 {
						changes = append(changes, fmt.Sprintf("%s: %s", es.Name, statusChange(prev, es)))
					}
					last[es.Name] = es.DeepCopy()
				}
			}
		}
	}
	w.Stop()
	quietCalls := calls() - quietCalls0
	opsQuiet, apiQuiet := callsByOperation(), apiRequestsByMethod()
	loadEnd := bench.LoadAverage()
	kubeWrites := writeRequests(apiQuiet) - writeRequests(apiReady)
	st, err := bench.ReadProc(cmd.Process.Pid)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range changes {
		logf("quiet-period write: %s", c)
		notes = append(notes, "Write in the quiet period: "+c+".")
	}
	logf("quiet %s: %d writes to EventStreams, %.0f Kubernetes API writes, %.0f management API calls; operator RSS %d MiB", o.quiet, writes, kubeWrites, quietCalls, st.RSS>>20)

	title := fmt.Sprintf("operator, %d EventStreams at once", o.streams)
	rows := [][]string{
		{"5", title, "time until all TopologyReady (applied in " + applied.Round(time.Millisecond).String() + ")", readyFigure, "", "", ""},
		{"5", "", "management API calls until then (per stream)", fmt.Sprintf("%.0f (%.1f)", callsReady, callsReady/float64(o.streams)), "", "", ""},
		{"5", "", fmt.Sprintf("writes to EventStreams in %s quiet", o.quiet), strconv.Itoa(writes), "", "none", verdictString(writes == 0)},
		{"5", "", "… by operation (per stream)", describeCalls(ops0, opsReady, o.streams), "", "", ""},
		{"5", "", "Kubernetes API writes until then (POST/PUT/PATCH/DELETE)", fmt.Sprintf("%.0f", writeRequests(apiReady)-writeRequests(api0)), "", "", ""},
		{"5", "", fmt.Sprintf("Kubernetes API writes in %s quiet", o.quiet), describeWrites(apiReady, apiQuiet, kubeWrites), "", "none", verdictString(kubeWrites == 0)},
		{"5", "", fmt.Sprintf("management API calls in %s quiet (per stream)", o.quiet), fmt.Sprintf("%.0f (%.2f)", quietCalls, quietCalls/float64(o.streams)), "", "", ""},
		{"5", "", "… by operation (per stream)", describeCalls(opsReady, opsQuiet, o.streams), "", "", ""},
		{"5", "", "operator RSS", fmt.Sprintf("%d MiB", st.RSS>>20), "", "", ""},
	}
	flagsNote := "the binary's defaults"
	if o.args != "" {
		flagsNote = "`" + o.args + "`"
	}
	notes = append(notes, fmt.Sprintf("Operator scenario: the operator binary (%s) against envtest's API server and the private RabbitMQ node; quiet period %s (`--operator-quiet 5m` for the issue's five minutes). Load average (1/5/15 min) at the start %s, when all were TopologyReady %s, at the end %s.",
		flagsNote, o.quiet, loadStart, loadReady, loadEnd))
	return rows, notes, nil
}

// writeRequests sums the Kubernetes API requests that can change something.
func writeRequests(byMethod map[string]float64) float64 {
	return byMethod["POST"] + byMethod["PUT"] + byMethod["PATCH"] + byMethod["DELETE"]
}

// describeWrites is the number of write requests between two readings, with their methods:
// "8 (PATCH 8)".
func describeWrites(before, after map[string]float64, total float64) string {
	if total == 0 {
		return "0"
	}
	var parts []string
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if d := after[method] - before[method]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", method, d))
		}
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(parts, ", "))
}

// describeCalls lists the management API calls made between two readings, by operation, most
// frequent first, each with its count per stream: "get_queue 1000 (2.0), …".
func describeCalls(before, after map[string]float64, streams int) string {
	type op struct {
		name  string
		calls float64
	}
	var ops []op
	for name, v := range after {
		if d := v - before[name]; d > 0 {
			ops = append(ops, op{name, d})
		}
	}
	if len(ops) == 0 {
		return "none"
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].calls != ops[j].calls {
			return ops[i].calls > ops[j].calls
		}
		return ops[i].name < ops[j].name
	})
	parts := make([]string, len(ops))
	for i, o := range ops {
		parts[i] = fmt.Sprintf("%s %.0f (%.2f)", o.name, o.calls, o.calls/float64(streams))
	}
	return strings.Join(parts, ", ")
}

func verdictString(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// waitFor polls cond every 500ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	if !poll.Within(ctx, timeout, 500*time.Millisecond, cond) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("not within %s", timeout)
	}
	return nil
}

// cleanupBroker deletes the queues, exchanges and policies the scenario's streams made.
func cleanupBroker(mgmtURI, prefix string, logf func(string, ...any)) {
	rmq, err := rabbithole.NewClient(mgmtURI, "guest", "guest")
	if err != nil {
		logf("cleanup: %v", err)
		return
	}
	n := 0
	if qs, err := rmq.ListQueues(); err == nil {
		for _, q := range qs {
			if strings.HasPrefix(q.Name, prefix) {
				if _, err := rmq.DeleteQueue(q.Vhost, q.Name); err == nil {
					n++
				}
			}
		}
	}
	if xs, err := rmq.ListExchanges(); err == nil {
		for _, x := range xs {
			if strings.HasPrefix(x.Name, prefix) {
				if _, err := rmq.DeleteExchange(x.Vhost, x.Name); err == nil {
					n++
				}
			}
		}
	}
	if ps, err := rmq.ListPolicies(); err == nil {
		for _, p := range ps {
			if strings.HasPrefix(p.Name, "eventstream.bench.") {
				_, _ = rmq.DeletePolicy(p.Vhost, p.Name)
				n++
			}
		}
	}
	logf("cleanup: %d broker objects deleted", n)
}

// statusChange names what differs between two versions of an EventStream: metadata.generation,
// the status fields, and the conditions (type: status reason), so a write can be explained.
func statusChange(prev, cur *esv1.EventStream) string {
	var diffs []string
	if prev.Generation != cur.Generation {
		diffs = append(diffs, fmt.Sprintf("generation %d → %d", prev.Generation, cur.Generation))
	}
	a, _ := json.Marshal(prev.Status)
	b, _ := json.Marshal(cur.Status)
	var am, bm map[string]json.RawMessage
	_ = json.Unmarshal(a, &am)
	_ = json.Unmarshal(b, &bm)
	for k, v := range bm {
		if k != "conditions" && string(am[k]) != string(v) {
			diffs = append(diffs, fmt.Sprintf("status.%s %.80s → %.80s", k, am[k], v))
		}
	}
	for _, c := range cur.Status.Conditions {
		p := meta.FindStatusCondition(prev.Status.Conditions, c.Type)
		if p == nil || p.Status != c.Status || p.Reason != c.Reason || p.Message != c.Message {
			was := "none"
			if p != nil {
				was = fmt.Sprintf("%s %s", p.Status, p.Reason)
			}
			diffs = append(diffs, fmt.Sprintf("condition %s %s → %s %s (%.80s)", c.Type, was, c.Status, c.Reason, c.Message))
		}
	}
	if len(diffs) == 0 {
		return "no status or generation change (metadata only)"
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}
