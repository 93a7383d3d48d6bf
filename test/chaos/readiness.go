package chaos

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// readinessWatch polls a bridge's /readyz every 100 ms and records each change, so the suite
// can say when a replica turned not ready after a fault (a 100 ms resolution against targets
// of seconds). A refused connection (the process is down) counts as not ready.
type readinessWatch struct {
	url    string
	client *http.Client
	stop   context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changes []readinessChange
}

type readinessChange struct {
	At    instant
	Ready bool
}

func watchReadiness(opsAddr string) *readinessWatch {
	ctx, stop := context.WithCancel(context.Background())
	w := &readinessWatch{
		url:    "http://" + opsAddr + "/readyz",
		client: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		stop:   stop,
		done:   make(chan struct{}),
	}
	go w.run(ctx)
	return w
}

func (w *readinessWatch) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := w.probe(ctx)
		at := now()
		w.mu.Lock()
		if n := len(w.changes); n == 0 || w.changes[n-1].Ready != ready {
			w.changes = append(w.changes, readinessChange{At: at, Ready: ready})
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *readinessWatch) probe(ctx context.Context) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	resp, err := w.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// FirstAfter returns the first moment at or after t at which the bridge was observed ready
// (ready true) or not ready (false): t itself when it already was, else the change after t.
func (w *readinessWatch) FirstAfter(t instant, ready bool) (instant, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.changes {
		if c.At <= t && (i+1 == len(w.changes) || w.changes[i+1].At > t) && c.Ready == ready {
			return t, true // the state at t
		}
		if c.At > t && c.Ready == ready {
			return c.At, true
		}
	}
	return 0, false
}

func (w *readinessWatch) Stop() {
	w.stop()
	<-w.done
}
