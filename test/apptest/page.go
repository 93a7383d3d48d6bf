package apptest

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
	"github.com/eventstream-operator/eventstream-operator/test/browsertest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// Update is one line of the page's list of job updates.
type Update struct {
	Status   string `json:"status"`
	Progress int    `json:"progress"`
	Team     string `json:"team"`
}

// PageState is what examples/nextjs shows a person: the connection ("live" when open), the
// notice after a gap, and every update in the order received.
type PageState struct {
	Connection string   `json:"connection"`
	Notice     string   `json:"notice"`
	Updates    []Update `json:"updates"`
}

const readPageState = `(() => ({
  connection: document.querySelector('[data-testid=connection]')?.textContent ?? '',
  notice: document.querySelector('[data-testid=notice]')?.textContent ?? '',
  updates: [...document.querySelectorAll('[data-testid=updates] li')].map((li) => ({
    status: li.dataset.status, progress: Number(li.dataset.progress), team: li.dataset.team })),
}))()`

// Tab is a headless Chromium tab that records the requests it sends.
type Tab struct {
	t   T
	ctx context.Context

	mu       sync.Mutex
	paths    []string     // path of every request, in order
	streams  []url.Values // query of every /api/v1/events request, in order
	statuses []int64      // status of every /api/v1/events response, in order
}

// OpenTab starts a headless Chromium for the test (3 minutes at most) and opens pageURL.
func OpenTab(t T, browserPath, pageURL string) *Tab {
	t.Helper()
	opts := browsertest.AllocatorOptions(browserPath, t.TempDir())
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	tab := &Tab{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) { // starts the browser and its tab
		tab.mu.Lock()
		defer tab.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if u, err := url.Parse(e.Request.URL); err == nil {
				tab.paths = append(tab.paths, u.Path)
				if u.Path == contract.DefaultPath {
					tab.streams = append(tab.streams, u.Query())
				}
			}
		case *network.EventResponseReceived:
			if u, err := url.Parse(e.Response.URL); err == nil && u.Path == contract.DefaultPath {
				tab.statuses = append(tab.statuses, e.Response.Status)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	return tab
}

// Requests returns how many requests the tab sent to path so far.
func (b *Tab) Requests(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.paths {
		if p == path {
			n++
		}
	}
	return n
}

// StreamRequests returns the query of every event-stream request so far.
func (b *Tab) StreamRequests() []url.Values {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]url.Values(nil), b.streams...)
}

// StreamStatuses returns the status of every event-stream response so far.
func (b *Tab) StreamStatuses() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int64(nil), b.statuses...)
}

// State reads what the page shows now.
func (b *Tab) State() PageState {
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[PageState](readPageState))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// WaitFor polls the page (60 s at most: the machine may be loaded) until cond holds.
func (b *Tab) WaitFor(what string, cond func(PageState) bool) PageState {
	b.t.Helper()
	return waitFor(b, what, b.State, cond)
}

// JobRow is one row of the job-list page (/jobs).
type JobRow struct {
	Job      string `json:"job"`
	Team     string `json:"team"`
	Status   string `json:"status"`
	Progress int    `json:"progress"`
}

// ListState is what the job-list page shows: the connection, the snapshot's state ("loading",
// "complete", or a text starting with "partial") and its key count, and one row per job.
type ListState struct {
	Connection string   `json:"connection"`
	Snapshot   string   `json:"snapshot"`
	Keys       int      `json:"keys"`
	Jobs       []JobRow `json:"jobs"`
}

const readListState = `(() => ({
  connection: document.querySelector('[data-testid=connection]')?.textContent ?? '',
  snapshot: document.querySelector('[data-testid=snapshot]')?.textContent ?? '',
  keys: Number(document.querySelector('[data-testid=snapshot]')?.dataset.keys ?? -1),
  jobs: [...document.querySelectorAll('[data-testid=jobs] tr')].map((tr) => ({
    job: tr.dataset.job, team: tr.dataset.team, status: tr.dataset.status, progress: Number(tr.dataset.progress) })),
}))()`

// ListState reads what the job-list page shows now.
func (b *Tab) ListState() ListState {
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[ListState](readListState))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// WaitForList polls the job-list page (60 s at most) until cond holds.
func (b *Tab) WaitForList(what string, cond func(ListState) bool) ListState {
	b.t.Helper()
	return waitFor(b, what, b.ListState, cond)
}

func waitFor[S any](b *Tab, what string, read func() S, cond func(S) bool) S {
	b.t.Helper()
	var s S
	if !poll.Within(context.Background(), 60*time.Second, 50*time.Millisecond, func() bool { s = read(); return cond(s) }) {
		b.t.Fatalf("page: timed out waiting for %s; it shows %+v", what, s)
	}
	return s
}

// Reopened returns the streams the page reopened with a fresh token and the last event id
// (the browser's own reconnects repeat an earlier URL, token included).
func Reopened(requests []url.Values) []url.Values {
	var out []url.Values
	tokens := map[string]bool{}
	for _, q := range requests {
		token := q.Get("access_token")
		if !tokens[token] && q.Get("lastEventId") != "" {
			out = append(out, q)
		}
		tokens[token] = true
	}
	return out
}
