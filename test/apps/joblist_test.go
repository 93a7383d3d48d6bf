package apps

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/apptest"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// snapshotFlags: a stream queue, whose bridge rebuilds its snapshot store from the stream and
// is ready only once it is complete, with snapshots of up to 1,000 jobs.
var snapshotFlags = []string{"--queue-type=stream", "--snapshot-max-keys=1000"}

// jobBook is what the publishers made of every job: its newest status, by team and job.
type jobBook struct {
	latest    map[string]apptest.JobRow // "team/job"
	published int
}

func newJobBook() *jobBook { return &jobBook{latest: map[string]apptest.JobRow{}} }

func (b *jobBook) record(team, job, status string, progress int) {
	b.latest[team+"/"+job] = apptest.JobRow{Job: job, Team: team, Status: status, Progress: progress}
	b.published++
}

// team returns the newest row of every job of team, by job.
func (b *jobBook) team(team string) map[string]apptest.JobRow {
	out := map[string]apptest.JobRow{}
	for _, row := range b.latest {
		if row.Team == team {
			out[row.Job] = row
		}
	}
	return out
}

// goPublisher publishes contract events with the project's Go publisher (confirms and
// mandatory), recording them in book: the volume of a busy system.
type goPublisher struct {
	t    *testing.T
	pub  *publish.Publisher
	tmpl *events.Template
	book *jobBook
}

func newGoPublisher(t *testing.T, s *stack, book *jobBook) *goPublisher {
	t.Helper()
	pub, err := publish.Dial(s.node.URI, nil, publish.PublisherConfig{Exchange: s.exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return &goPublisher{t: t, pub: pub, tmpl: events.MustParseTemplate(events.DefaultRoutingKeyTemplate), book: book}
}

// change is one status change of one job.
type change struct {
	team, job, status string
	progress          int
	message           string
}

// publish publishes the changes in order and waits until the broker confirmed all of them.
func (p *goPublisher) publish(changes []change) {
	p.t.Helper()
	confirms := make([]*publish.Confirmation, 0, len(changes))
	for _, c := range changes {
		ev := events.Event{ID: events.NewID(), Type: "job.status", TeamID: c.team, JobID: c.job,
			Status: c.status, Progress: c.progress, Message: c.message, Time: time.Now().UTC()}
		key, err := ev.RoutingKey(p.tmpl)
		if err != nil {
			p.t.Fatal(err)
		}
		body, err := ev.Marshal()
		if err != nil {
			p.t.Fatal(err)
		}
		confirm, err := p.pub.PublishDeferred(context.Background(), key, body, publish.PublishOptions{MessageID: ev.ID})
		if err != nil {
			p.t.Fatal(err)
		}
		confirms = append(confirms, confirm)
		p.book.record(c.team, c.job, c.status, c.progress)
	}
	for _, c := range confirms {
		if err := c.Wait(context.Background()); err != nil {
			p.t.Fatal(err)
		}
	}
}

// history: every job of teams 42 (jobs 1..jobs) and 43 (1..jobs/10) goes through queued,
// running with progress and a final status, version after version.
func history(jobs, versions int) []change {
	var out []change
	for v := 1; v <= versions; v++ {
		for j := 1; j <= jobs; j++ {
			status, progress := "running", v*100/(versions+1)
			if v == versions {
				status, progress = []string{"succeeded", "failed"}[j%2], 100
			}
			out = append(out, change{team: "42", job: strconv.Itoa(j), status: status, progress: progress})
			if j <= jobs/10 {
				out = append(out, change{team: "43", job: strconv.Itoa(j), status: "running", progress: v})
			}
		}
	}
	return out
}

// waitConsumed waits until the bridge consumed everything book recorded.
func waitConsumed(t *testing.T, s *stack, book *jobBook) {
	t.Helper()
	if got, err := s.bridge.WaitMetric(metrics.EventsConsumed, func(v float64) bool { return v >= float64(book.published) }, 60*time.Second); err != nil {
		t.Fatalf("the bridge consumed %v of %d events: %v", got, book.published, err)
	}
}

// rowsOf indexes the page's rows by job; a job shown twice fails the test.
func rowsOf(t *testing.T, list apptest.ListState) map[string]apptest.JobRow {
	t.Helper()
	out := map[string]apptest.JobRow{}
	for _, row := range list.Jobs {
		if _, dup := out[row.Job]; dup {
			t.Fatalf("the page shows job %s twice", row.Job)
		}
		out[row.Job] = row
	}
	return out
}

// sameRows says whether the page shows exactly want, one row per job.
func sameRows(list apptest.ListState, want map[string]apptest.JobRow) bool {
	if len(list.Jobs) != len(want) {
		return false
	}
	for _, row := range list.Jobs {
		if want[row.Job] != row {
			return false
		}
	}
	return true
}

// rowDiff describes how the page's rows differ from want (a few jobs).
func rowDiff(t *testing.T, list apptest.ListState, want map[string]apptest.JobRow) string {
	t.Helper()
	got := rowsOf(t, list)
	var diffs []string
	for job, w := range want {
		if got[job] != w {
			diffs = append(diffs, fmt.Sprintf("job %s: %+v, want %+v", job, got[job], w))
		}
	}
	for job, g := range got {
		if _, ok := want[job]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %+v", g))
		}
	}
	sort.Strings(diffs)
	return fmt.Sprintf("%d rows, want %d; %d differ: %s", len(got), len(want), len(diffs), strings.Join(diffs[:min(5, len(diffs))], "; "))
}

// TestNextJSJobListFromSnapshot (issue 15): 200 jobs of team 42 and 20 of team 43 changed state
// four times each (Go publisher), then some through the Celery example's publish_status and
// the aio-pika publisher. Chromium opens /jobs?team_id=42 on a bridge with snapshots: its first
// render (the snapshot's end) shows exactly the newest status of every job of team 42 and none
// of team 43, complete; then live events change rows. The app's /api/jobs is never called.
func TestNextJSJobListFromSnapshot(t *testing.T) {
	const jobs = 200
	browserPath := browsertest.Chromium(t)
	s := startStackWith(t, stackOptions{bridgeFlags: snapshotFlags})
	book := newJobBook()
	newGoPublisher(t, s, book).publish(history(jobs, 4))
	if out, err := apptest.PublishWithCelery(s.pythonEnv, "42", "celery-1", "running", 40, "from celery"); err != nil {
		t.Fatalf("celery publish_status: %v\n%s", err, out)
	}
	book.record("42", "celery-1", "running", 40)
	apptest.PublishWithAioPika(t, s.pythonEnv, "42", "7", "queued", 0, "retried")
	book.record("42", "7", "queued", 0)
	apptest.PublishWithAioPika(t, s.pythonEnv, "43", "aio-43", "running", 10, "another tenant's job")
	book.record("43", "aio-43", "running", 10)
	waitConsumed(t, s, book)

	tab := apptest.OpenTab(t, browserPath, s.pageBase+"/jobs?team_id=42")
	first := tab.WaitForList("the snapshot's end", func(l apptest.ListState) bool { return l.Snapshot != "loading" })
	want := book.team("42")
	if !sameRows(first, want) {
		t.Fatalf("first render: %s", rowDiff(t, first, want))
	}
	if first.Snapshot != "complete" || first.Keys != len(want) {
		t.Fatalf("first render: snapshot %q with %d keys, want complete with %d", first.Snapshot, first.Keys, len(want))
	}

	// The 5 s token is refreshed after 4 s: the page reopens with the id of snapshot-end (snapshot
	// events carry none) and resumes there, without a second snapshot.
	var reopen url.Values
	poll.Until(t, 60*time.Second, "a token refresh", func() bool {
		requests := tab.StreamRequests()
		for _, q := range requests[1:] {
			if q.Get("access_token") != requests[0].Get("access_token") {
				reopen = q
				return true
			}
		}
		return false
	})
	if reopen.Get("lastEventId") == "" || reopen.Get("snapshot") != "1" {
		t.Fatalf("the page reopened its stream with lastEventId %q, snapshot %q: want the snapshot-end's id, snapshot=1", reopen.Get("lastEventId"), reopen.Get("snapshot"))
	}

	// Live: another tenant's change (published first, so it would arrive first), then two rows
	// of team 42 change, one of them a job the snapshot did not hold.
	apptest.PublishWithAioPika(t, s.pythonEnv, "43", "7", "failed", 100, "")
	book.record("43", "7", "failed", 100)
	apptest.PublishWithAioPika(t, s.pythonEnv, "42", "7", "running", 30, "")
	book.record("42", "7", "running", 30)
	if out, err := apptest.PublishWithCelery(s.pythonEnv, "42", "celery-2", "queued", 0, ""); err != nil {
		t.Fatalf("celery publish_status: %v\n%s", err, out)
	}
	book.record("42", "celery-2", "queued", 0)
	waitRows(t, tab, "the live updates", book.team("42"), nil)
	if n := tab.Requests("/api/jobs"); n != 0 {
		t.Fatalf("the job list called /api/jobs %d times", n)
	}
	if n := metric(t, s, metrics.SnapshotsSent); n != 1 {
		t.Fatalf("the bridge sent %v snapshots to the page, want 1: a reopen did not resume", n)
	}
}

// TestNextJSJobListRecoversFromSnapshotAfterGap (issue 15): the job list's connection stops
// being read (a slow client, made by pausing the link between `next start` and the bridge)
// while jobs keep changing: the bridge drops events for it (overflow) and sends a gap, then a
// new snapshot. The page ends up showing exactly the current status of every job of team 42,
// without calling the app's /api/jobs.
func TestNextJSJobListRecoversFromSnapshotAfterGap(t *testing.T) {
	const jobs = 200
	browserPath := browsertest.Chromium(t)
	// Tokens outlive the test: a refresh while the link is paused would replace the slow
	// stream with one that resumes from its id, without a gap.
	s := startStackWith(t, stackOptions{bridgeFlags: append([]string{"--buffer-size=8"}, snapshotFlags...),
		slowLink: true, tokenLifetime: 10 * time.Minute})
	book := newJobBook()
	publisher := newGoPublisher(t, s, book)
	publisher.publish(history(jobs, 3))
	waitConsumed(t, s, book)

	tab := apptest.OpenTab(t, browserPath, s.pageBase+"/jobs?team_id=42")
	first := tab.WaitForList("the snapshot's end", func(l apptest.ListState) bool { return l.Snapshot != "loading" })
	if want := book.team("42"); !sameRows(first, want) || first.Snapshot != "complete" {
		t.Fatalf("first render (%s): %s", first.Snapshot, rowDiff(t, first, want))
	}
	snapshotsBefore := metric(t, s, metrics.SnapshotsSent)

	// The slow client: changes of 1.5 KB each until the bridge dropped some for the page.
	s.link.pause()
	padding := strings.Repeat("x", 1500)
	for round := 0; metric(t, s, metrics.EventsDropped) == 0; round++ {
		if round == 20 {
			s.link.unpause()
			t.Fatalf("%d changes published while the page was not read, and the bridge dropped none", book.published)
		}
		var changes []change
		for i := 0; i < 500; i++ {
			job := 1 + (round*500+i)%jobs
			changes = append(changes, change{team: "42", job: strconv.Itoa(job), status: "running", progress: (round*500 + i) % 100, message: padding})
			if i%10 == 0 {
				changes = append(changes, change{team: "43", job: strconv.Itoa(1 + i%20), status: "running", progress: round, message: padding})
			}
		}
		publisher.publish(changes)
		waitConsumed(t, s, book)
	}
	s.link.unpause()

	last := waitRows(t, tab, "the exact current state after the gap", book.team("42"), func(l apptest.ListState) bool {
		return l.Snapshot == "complete" && metric(t, s, metrics.SnapshotsSent) > snapshotsBefore
	})
	if n := tab.Requests("/api/jobs"); n != 0 {
		t.Fatalf("the job list called /api/jobs %d times", n)
	}
	for _, row := range last.Jobs {
		if row.Team != "42" {
			t.Fatalf("the page shows %+v of another team", row)
		}
	}
	t.Logf("%d changes, %v dropped for the slow page, %v snapshots sent", book.published, metric(t, s, metrics.EventsDropped), metric(t, s, metrics.SnapshotsSent))
}

// waitRows polls the job list (60 s at most) until it shows exactly want and more holds (nil:
// nothing more), and returns what it shows.
func waitRows(t *testing.T, tab *apptest.Tab, what string, want map[string]apptest.JobRow, more func(apptest.ListState) bool) apptest.ListState {
	t.Helper()
	var l apptest.ListState
	if !poll.Within(context.Background(), 60*time.Second, 100*time.Millisecond, func() bool {
		l = tab.ListState()
		return sameRows(l, want) && (more == nil || more(l))
	}) {
		t.Fatalf("timed out waiting for %s: the page shows %q (%d keys), %s", what, l.Snapshot, l.Keys, rowDiff(t, l, want))
	}
	return l
}

// metric scrapes one of the bridge's metrics (summed over its labels).
func metric(t *testing.T, s *stack, name string) float64 {
	t.Helper()
	m, err := s.bridge.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	return m[name]
}

// TestNextJSJobListKeepsRowsOnPartialSnapshot: on a classic queue the bridge's store lives in
// its process, so its snapshots are partial (for --snapshot-max-age after it started) and the
// page says so. When the bridge restarts under the open page, the page gets a gap (the new
// process does not know its id) and a partial snapshot holding only what the new process
// consumed: the page updates those jobs and keeps the others, instead of emptying the list.
func TestNextJSJobListKeepsRowsOnPartialSnapshot(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	s := startStackWith(t, stackOptions{bridgeFlags: []string{"--snapshot-max-keys=1000"}})
	book := newJobBook()
	publisher := newGoPublisher(t, s, book)
	publisher.publish(history(20, 2))
	waitConsumed(t, s, book)

	tab := apptest.OpenTab(t, browserPath, s.pageBase+"/jobs?team_id=42")
	first := waitRows(t, tab, "the first render", book.team("42"), nil)
	if !strings.HasPrefix(first.Snapshot, "partial") {
		t.Fatalf("a classic bridge's snapshot shows as %q, want partial", first.Snapshot)
	}

	s.bridge.Stop()
	// Waits in the queue while no bridge runs; the new process consumes it.
	apptest.PublishWithAioPika(t, s.pythonEnv, "42", "3", "succeeded", 100, "")
	book.record("42", "3", "succeeded", 100)
	s.startBridge(t)
	waitRows(t, tab, "the rows after the restart", book.team("42"), func(apptest.ListState) bool {
		return metric(t, s, metrics.SnapshotsSent) >= 1 // the new process sent the page its snapshot
	})
	apptest.PublishWithAioPika(t, s.pythonEnv, "42", "4", "failed", 100, "")
	book.record("42", "4", "failed", 100)
	waitRows(t, tab, "a live event after the restart", book.team("42"), nil)
	if n := tab.Requests("/api/jobs"); n != 0 {
		t.Fatalf("the job list called /api/jobs %d times", n)
	}
}

// TestNextJSJobListNeedsSnapshotsOnTheBridge: on a bridge without snapshots (the EventStream
// has no spec.bridge.snapshot) the list's stream is refused with 400 and the page says
// reconnecting, instead of showing an empty list as if it were the current state.
func TestNextJSJobListNeedsSnapshotsOnTheBridge(t *testing.T) {
	browserPath := browsertest.Chromium(t)
	s := startStack(t)
	tab := apptest.OpenTab(t, browserPath, s.pageBase+"/jobs?team_id=42")
	poll.Until(t, 60*time.Second, "the stream to be refused", func() bool {
		return slices.Contains(tab.StreamStatuses(), http.StatusBadRequest)
	})
	l := tab.WaitForList("the page to say it reconnects", func(l apptest.ListState) bool { return l.Connection == "reconnecting" })
	if l.Snapshot != "loading" || len(l.Jobs) != 0 {
		t.Fatalf("without snapshots the page shows %q and %d jobs", l.Snapshot, len(l.Jobs))
	}
}
