package apps

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/apptest"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// stack is one test's running system: the broker's topology, a bridge with JWT auth on the
// address compiled into the Next.js build, `next start`, and the Python examples' environment.
type stack struct {
	node      *rabbitmqtest.Node
	queue     string
	exchange  string
	bridge    *bench.BridgeProcess
	app       *nextApp
	pageBase  string
	pythonEnv []string
	opts      stackOptions
	link      *slowLink // with opts.slowLink
}

// stackOptions changes the default stack (a classic queue, no snapshots, the bridge on the
// address compiled into the Next.js build).
type stackOptions struct {
	bridgeFlags []string // added to the bridge's flags
	// slowLink puts the bridge on a free port behind a slowLink on the build's bridge address.
	slowLink bool
	// tokenLifetime of the page's tokens; 0: tokenLifetime (short: the page refreshes often).
	tokenLifetime time.Duration
}

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, stackOptions{})
}

func startStackWith(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	node := rabbitmqtest.Shared(t)
	s := &stack{
		opts:     opts,
		node:     node,
		queue:    "apps-q-" + events.NewID()[:8],
		exchange: "apps-x-" + events.NewID()[:8],
		app:      builtNextApp(t),
	}
	s.pythonEnv = apptest.PythonEnv(t, node.URI, s.exchange)
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, s.queue, s.exchange) })
	s.startBridge(t)
	lifetime := opts.tokenLifetime
	if lifetime == 0 {
		lifetime = tokenLifetime
	}
	s.pageBase = startNext(t, s.app, lifetime)
	return s
}

// startBridge starts the real bridge binary (classic queue unless opts.bridgeFlags say
// otherwise, HS256 JWT with the run's secret, tokens valid until exp exactly).
func (s *stack) startBridge(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr := s.app.bridgeAddr
	if s.opts.slowLink {
		addr = "" // a free port; the link listens on the build's address
	}
	b, err := bench.StartBridge(ctx, bench.BridgeOptions{
		Binary: bridgeBinary(t), AMQPURL: s.node.URI, Exchange: s.exchange, Queue: s.queue,
		JWTSecret: jwtSecret, Addr: addr,
		// No leeway: the bridge ends a stream when its 5 s token expires, not 30 s later.
		Extra: append([]string{"--retry", "300ms", "--auth-leeway", "0s"}, s.opts.bridgeFlags...),
		Log:   apptest.ProcessLog(t, "bridge"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	s.bridge = b
	if s.opts.slowLink && s.link == nil {
		s.link = startSlowLink(t, s.app.bridgeAddr, b.Addr)
	}
}

// TestNextJSPageShowsCeleryAndAioPikaEvents: the Next.js page for job J of team 42 shows, in
// order, the aio-pika publisher's "queued" and every status the Celery task published while it
// worked, ending at succeeded 100 %; a confirmed team-43 event for the same job never appears.
// The token (5 s) is refreshed while the job runs, reopening with lastEventId, and no event is
// lost or doubled.
func TestNextJSPageShowsCeleryAndAioPikaEvents(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	s := startStack(t)
	taskQueue := "apps-celery-" + events.NewID()[:8]
	// Celery declares a direct exchange named after the queue.
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(s.node.URI, taskQueue, taskQueue) })
	apptest.StartCeleryWorker(t, s.pythonEnv, taskQueue)
	job := "job-" + events.NewID()[:8]

	tab := apptest.OpenTab(t, browserPath, s.pageBase+"/?team_id=42&job_id="+job)
	tab.WaitFor("the stream to open", func(p apptest.PageState) bool { return p.Connection == "live" })

	apptest.PublishWithAioPika(t, s.pythonEnv, "42", job, "queued", 0, "waiting for a worker")
	tab.WaitFor("the aio-pika event", func(p apptest.PageState) bool { return len(p.Updates) == 1 })
	apptest.PublishWithAioPika(t, s.pythonEnv, "43", job, "running", 50, "another tenant's job")

	const steps, stepSeconds = 10, 0.7 // 7 s of work: longer than a token refresh period (4 s)
	apptest.SubmitJob(t, s.pythonEnv, taskQueue, "42", job, steps, stepSeconds)
	tab.WaitFor("the job to start", func(p apptest.PageState) bool { return len(p.Updates) >= 2 })
	reopensBeforeJob := len(apptest.Reopened(tab.StreamRequests()))
	last := tab.WaitFor("the job to succeed", func(p apptest.PageState) bool {
		return len(p.Updates) > 0 && p.Updates[len(p.Updates)-1].Status == "succeeded"
	})

	want := []apptest.Update{team42("queued", 0), team42("running", 0)}
	for step := 1; step < steps; step++ {
		want = append(want, team42("running", step*100/steps))
	}
	want = append(want, team42("succeeded", 100))
	if !reflect.DeepEqual(last.Updates, want) {
		t.Fatalf("the page shows\n%v\nwant\n%v", last.Updates, want)
	}
	if last.Notice != "" {
		t.Fatalf("the page says %q: the bridge reported a gap", last.Notice)
	}

	// Refreshes: the page reopened with a fresh token and the last event id it had seen.
	requests := tab.StreamRequests()
	reopens := apptest.Reopened(requests)
	if len(reopens)-reopensBeforeJob < 1 {
		t.Fatalf("no token refresh while the job ran (%d stream requests: %v)", len(requests), requests)
	}
	if requests[0].Get("lastEventId") != "" {
		t.Fatalf("the first stream request resumes from %q", requests[0].Get("lastEventId"))
	}
	// Refreshed before exp, not after the bridge refused the expired token: a reopen after
	// expiry follows the browser's own reconnect with the old token, answered 401.
	refused := 0
	for _, status := range tab.StreamStatuses() {
		if status == http.StatusUnauthorized {
			refused++
		}
	}
	if refused >= len(reopens) {
		t.Fatalf("%d reopens and %d 401 answers: the page reopened only after its token expired", len(reopens), refused)
	}
	t.Logf("%d stream requests, %d reopened with a fresh token and lastEventId (%d during the job), %d answered 401", len(requests), len(reopens), len(reopens)-reopensBeforeJob, refused)
}

func team42(status string, progress int) apptest.Update {
	return apptest.Update{Status: status, Progress: progress, Team: "42"}
}

// TestNextJSPageReloadsStateAfterGap: when the bridge restarts (classic queue: the new process
// does not know the page's last event id) the page receives a gap, reloads the job's state from
// its route handler, and goes on showing live events.
func TestNextJSPageReloadsStateAfterGap(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	s := startStack(t)
	job := "job-" + events.NewID()[:8]
	tab := apptest.OpenTab(t, browserPath, s.pageBase+"/?team_id=42&job_id="+job)
	tab.WaitFor("the stream to open", func(p apptest.PageState) bool { return p.Connection == "live" })
	apptest.PublishWithAioPika(t, s.pythonEnv, "42", job, "running", 30, "")
	tab.WaitFor("the first event", func(p apptest.PageState) bool { return len(p.Updates) == 1 })

	s.bridge.Stop()
	s.startBridge(t)
	tab.WaitFor("the reload after the gap", func(p apptest.PageState) bool { return p.Notice == "Some updates were missed: state reloaded." })
	apptest.PublishWithAioPika(t, s.pythonEnv, "42", job, "running", 60, "")
	p := tab.WaitFor("a live event after the gap", func(p apptest.PageState) bool { return len(p.Updates) == 2 })
	if p.Updates[1] != team42("running", 60) {
		t.Fatalf("after the gap the page shows %v", p.Updates)
	}
}

// TestNextJSBundleHoldsNoSecret: the HS256 secret was in the environment of `next build`, yet
// no file the browser can load (.next/static) contains it.
func TestNextJSBundleHoldsNoSecret(t *testing.T) {
	app := builtNextApp(t)
	static := filepath.Join(app.dir, ".next", "static")
	files := 0
	err := filepath.WalkDir(static, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), jwtSecret) {
			return fmt.Errorf("%s contains the JWT secret", strings.TrimPrefix(path, app.dir+"/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("%s holds no file: the build did not produce the client bundle", static)
	}
}
