//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// received is one SSE event a client got: its id, its event name ("" or "message" for live
// events, "snapshot" for snapshot events, "gap" and "snapshot-end" for markers), its data
// and, for events, the decoded JSON body.
type received struct {
	ID    string
	Name  string
	Data  string
	Event events.Event
}

// isMarker says the SSE event carries no job event: a gap or the end of a snapshot.
func (r received) isMarker() bool { return r.Name == "gap" || r.Name == "snapshot-end" }

// messages are the Message fields of the events (markers left out), in arrival order.
func messages(all []received) []string {
	var out []string
	for _, r := range all {
		if !r.isMarker() {
			out = append(out, r.Event.Message)
		}
	}
	return out
}

func gaps(all []received) int {
	n := 0
	for _, r := range all {
		if r.Name == "gap" {
			n++
		}
	}
	return n
}

func teams(all []received) []string {
	var out []string
	for _, r := range all {
		if !r.isMarker() {
			out = append(out, r.Event.TeamID)
		}
	}
	return out
}

// tailProcess is a running `eventctl tail --json URL`. Its reader goroutine ends when the
// process's stdout closes; stop (registered with DeferCleanup) ends the process.
type tailProcess struct {
	cmd    *exec.Cmd
	stderr clitest.Output
	done   chan struct{}

	mu     sync.Mutex
	events []received
}

// startTail runs eventctl tail against url until stop; the caller registers stop with
// DeferCleanup in the scope the process should live for.
func startTail(url string) *tailProcess {
	GinkgoHelper()
	t := &tailProcess{done: make(chan struct{})}
	t.cmd = exec.Command(cfg.Eventctl, "tail", "--json", "--retry", "500ms", url)
	t.cmd.Stderr = &t.stderr
	stdout, err := t.cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(t.cmd.Start()).To(Succeed())
	fmt.Fprintf(GinkgoWriter, "started eventctl tail %s (pid %d)\n", url, t.cmd.Process.Pid)
	go t.read(stdout)
	return t
}

func (t *tailProcess) read(stdout io.Reader) {
	defer close(t.done)
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		var line struct{ ID, Event, Data string }
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			fmt.Fprintf(GinkgoWriter, "eventctl tail printed a line that is not JSON: %q\n", scanner.Text())
			continue
		}
		r := received{ID: line.ID, Name: line.Event, Data: line.Data}
		if !r.isMarker() {
			if err := json.Unmarshal([]byte(line.Data), &r.Event); err != nil {
				fmt.Fprintf(GinkgoWriter, "event data is not an event: %q\n", line.Data)
			}
		}
		t.mu.Lock()
		t.events = append(t.events, r)
		t.mu.Unlock()
	}
}

// received returns a copy of what arrived so far.
func (t *tailProcess) received() []received {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]received(nil), t.events...)
}

// reconnects counts the reconnect notices eventctl printed on stderr.
func (t *tailProcess) reconnects() int {
	return strings.Count(t.stderr.String(), "reconnecting in")
}

func (t *tailProcess) stop() {
	_ = t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.done
	}
	_ = t.cmd.Wait()
	fmt.Fprintf(GinkgoWriter, "eventctl tail stderr:\n%s\n", t.stderr.String())
}

// browser is one headless Chromium for the suite.
type browser struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// startBrowser starts Chromium; it is closed when the enclosing container ends.
func startBrowser() *browser {
	GinkgoHelper()
	opts := browsertest.AllocatorOptions(cfg.Chromium, GinkgoT().TempDir())
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// Starts the browser now, so a broken installation fails here and not in a spec.
	Expect(chromedp.Do(ctx)).To(Succeed())
	b := &browser{ctx: ctx, cancel: func() { cancel(); cancelAlloc() }}
	DeferCleanup(b.cancel)
	return b
}

// eventSourceScript opens an EventSource on the page's own origin and records what it sees,
// in arrival order: live events, gaps and, for a URL with snapshot=1, snapshot events and
// snapshot-end (docs/bridge.md "Snapshot").
const eventSourceScript = `(() => {
  window.seen = {events: [], opens: 0, errors: 0};
  window.source = new EventSource(%q);
  window.source.onopen = () => { window.seen.opens++; };
  window.source.onerror = () => { window.seen.errors++; };
  const record = (name) => (e) => { window.seen.events.push({id: e.lastEventId, name: name, data: e.data}); };
  window.source.onmessage = record('message');
  for (const name of ['gap', 'snapshot', 'snapshot-end']) {
    window.source.addEventListener(name, record(name));
  }
  return true;
})()`

// browserTab is a tab whose page, on the bridge's own origin, runs an EventSource.
type browserTab struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// openEventSource opens a tab on origin (the bridge Service; its answer to "/" is only a
// document of that origin, so the EventSource is same-origin and needs no CORS) and starts
// new EventSource(path) there. The tab lives until close; the caller registers close with
// DeferCleanup in the scope the tab should live for.
func (b *browser) openEventSource(origin, path string) *browserTab {
	GinkgoHelper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tab := &browserTab{ctx: ctx, cancel: cancel}
	Expect(chromedp.Do(ctx, chromedp.Navigate(origin+"/"))).To(Succeed())
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(eventSourceScript, path)))
	Expect(err).NotTo(HaveOccurred())
	Expect(ok).To(BeTrue())
	return tab
}

// browserSeen is window.seen of a tab.
type browserSeen struct {
	Events []struct {
		ID, Name, Data string
	}
	Opens, Errors int
}

func (tab *browserTab) close() { tab.cancel() }

func (tab *browserTab) seen() (browserSeen, error) {
	ctx, cancel := context.WithTimeout(tab.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[browserSeen](`window.seen`))
}

// received returns what the tab's EventSource got, decoded like tailProcess.received.
func (tab *browserTab) received() ([]received, error) {
	s, err := tab.seen()
	if err != nil {
		return nil, err
	}
	out := make([]received, 0, len(s.Events))
	for _, e := range s.Events {
		r := received{ID: e.ID, Name: e.Name, Data: e.Data}
		if !r.isMarker() {
			if err := json.Unmarshal([]byte(e.Data), &r.Event); err != nil {
				return nil, fmt.Errorf("event data %q: %w", e.Data, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// publish publishes one job-status event with eventctl on the host.
func publish(team, job, message string) error {
	_, err := command{
		name: cfg.Eventctl,
		args: []string{"publish", "--team", team, "--job", job, "--status", "running", "--message", message},
		env:  []string{"RABBITMQ_URL=" + cfg.RabbitMQURI},
	}.run()
	return err
}

// publishEvents publishes evs in order with one `eventctl publish --stdin` on the host, each
// confirmed by the broker before the next; it fails unless eventctl reports all of them.
func publishEvents(evs []events.Event) error {
	var lines strings.Builder
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		lines.Write(append(line, '\n'))
	}
	out, err := command{
		name:  cfg.Eventctl,
		args:  []string{"publish", "--stdin"},
		stdin: lines.String(),
		env:   []string{"RABBITMQ_URL=" + cfg.RabbitMQURI},
	}.run()
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("published %d events", len(evs)); !strings.Contains(out, want) {
		return fmt.Errorf("eventctl publish --stdin printed %q, want %q", out, want)
	}
	return nil
}

// sequencePublisher feeds `eventctl publish --stdin` one event every interval with messages
// "seq 1", "seq 2", ... until stop. Its goroutine is owned by stop.
type sequencePublisher struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	stdout    clitest.Output
	stderr    clitest.Output
	quit      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	published int
	writeErr  error
}

func startSequencePublisher(team, job string, interval time.Duration) *sequencePublisher {
	GinkgoHelper()
	p := &sequencePublisher{quit: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(cfg.Eventctl, "publish", "--stdin")
	p.cmd.Env = append(os.Environ(), "RABBITMQ_URL="+cfg.RabbitMQURI)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	var err error
	p.stdin, err = p.cmd.StdinPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(p.cmd.Start()).To(Succeed())
	go p.feed(team, job, interval)
	DeferCleanup(func() { _, _ = p.stop() })
	return p
}

func (p *sequencePublisher) feed(team, job string, interval time.Duration) {
	defer close(p.done)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-p.quit:
			return
		case <-ticker.C:
		}
		line, _ := json.Marshal(events.Event{Type: "job.status", TeamID: team, JobID: job, Status: "running",
			Progress: seq % 101, Message: "seq " + strconv.Itoa(seq)})
		if _, err := p.stdin.Write(append(line, '\n')); err != nil {
			p.mu.Lock()
			p.writeErr = err
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.published = seq
		p.mu.Unlock()
	}
}

// count is the number of events handed to eventctl so far.
func (p *sequencePublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published
}

// stop ends the feed, lets eventctl publish (and confirm) what it read, and returns the
// number of events published. Safe to call more than once.
func (p *sequencePublisher) stop() (int, error) {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	_ = p.stdin.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-waitErr:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err = fmt.Errorf("eventctl publish --stdin did not exit: %w", <-waitErr)
	}
	if err != nil && !strings.Contains(err.Error(), "Wait was already called") {
		return p.count(), fmt.Errorf("eventctl publish --stdin: %w; stderr: %s", err, p.stderr.String())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.writeErr != nil {
		return p.published, fmt.Errorf("feed eventctl publish: %w", p.writeErr)
	}
	want := fmt.Sprintf("published %d events", p.published)
	if out := p.stdout.String(); !strings.Contains(out, want) {
		return p.published, fmt.Errorf("eventctl publish --stdin printed %q, want %q", out, want)
	}
	return p.published, nil
}

// sequence is ["seq 1", ..., "seq n"].
func sequence(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "seq " + strconv.Itoa(i+1)
	}
	return out
}
