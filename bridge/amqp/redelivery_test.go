package amqp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

func TestEventID(t *testing.T) {
	for body, want := range map[string]string{
		`{"id":"e1","team_id":"1"}`:                     "e1",
		`{"team_id":"1","nested":{"id":"x"},"id":"e2"}`: "e2",
		` { "a" : [1, {"id": "no"}], "id" : "e3" } `:    "e3",
		`{"ID":"e4"}`:     "", // the contract's key is exactly "id"
		`{"id":""}`:       "",
		`{"id":5}`:        "",
		`["id","e5"]`:     "",
		`"id"`:            "",
		`{"team_id":"1"}`: "",
	} {
		got, ok := eventID([]byte(body))
		if got != want || ok != (want != "") {
			t.Errorf("eventID(%s) = %q, %v; want %q", body, got, ok, want)
		}
	}
}

// TestRedeliveryFilterForgetsAfterTheRedeliveries: the ids kept after a drop are only those
// handed off and not known acked, and they are forgotten at the first fresh delivery.
func TestRedeliveryFilterForgetsAfterTheRedeliveries(t *testing.T) {
	f := newRedeliveryFilter(10)
	ev := func(id string) []byte { return []byte(`{"id":"` + id + `"}`) }
	f.handedOff(ev("a"))
	f.acked() // a's ack may still be lost with the connection
	f.acked() // b..: a's ack was followed by another one: a is settled
	f.handedOff(ev("b"))
	f.acked()
	f.handedOff(ev("c"))
	f.handedOff([]byte(`{"no":"id"}`))
	f.sessionEnded()
	for id, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if got := f.duplicate(true, ev(id)); got != want {
			t.Errorf("redelivered %s: duplicate %v, want %v", id, got, want)
		}
	}
	if f.duplicate(false, ev("b")) {
		t.Error("a delivery not marked redelivered is never a duplicate")
	}
	if f.duplicate(true, ev("c")) {
		t.Error("the set survived the first fresh delivery")
	}
}

// stallingSink records the ids it is handed and holds the stallAt-th Publish until released,
// so that event and the ones before it since the last ack stay unacked.
type stallingSink struct {
	stallAt int
	stalled chan struct{} // closed when the stallAt-th Publish waits
	release chan struct{}

	mu  sync.Mutex
	ids []string
}

func (s *stallingSink) Publish(m hub.Message) (*hub.Frame, int) {
	id, _ := eventID(m.Data)
	s.mu.Lock()
	s.ids = append(s.ids, id)
	n := len(s.ids)
	s.mu.Unlock()
	if n == s.stallAt {
		close(s.stalled)
		<-s.release
	}
	return nil, 0
}

func (s *stallingSink) Advance(int64) {}

func (s *stallingSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// TestRedeliveriesOfHandedOffEventsAreSuppressed: the broker closes the bridge's connection
// while events are handed to the hub but not acked; the broker delivers them again on the new
// connection, and the hub gets each event exactly once, in order: the redeliveries of events
// already handed off are acked and counted as suppressed.
func TestRedeliveriesOfHandedOffEventsAreSuppressed(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	for _, qt := range []QueueType{Classic, Quorum} {
		t.Run(string(qt), func(t *testing.T) {
			t.Parallel()
			queue := "suppress-" + string(qt) + "-" + events.NewID()[:8]
			exchange := queue + "-x"
			const n = 60
			m := metrics.New()
			sink := &stallingSink{stallAt: 25, stalled: make(chan struct{}), release: make(chan struct{})}
			c := New(Config{
				URL: node.URI, Exchange: exchange, Queue: queue, QueueType: qt, DeclareTopology: true,
				Prefetch: 100, Template: events.MustParseTemplate(events.DefaultRoutingKeyTemplate),
				Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
				Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
			}, sink)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = c.Run(ctx)
			}()
			t.Cleanup(func() {
				cancel()
				<-done
				rabbitmqtest.DeleteTopology(node.URI, queue, exchange)
			})
			select {
			case <-c.Connected():
			case <-time.After(10 * time.Second):
				t.Fatal("consumer did not connect")
			}
			p, err := publish.Dial(node.URI, nil, publish.PublisherConfig{Exchange: exchange})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			want := make([]string, n)
			for i := range want {
				want[i] = "e" + strconv.Itoa(i+1)
				body := fmt.Sprintf(`{"id":%q,"team_id":"1","job_id":"1","status":"running"}`, want[i])
				if err := p.Publish(context.Background(), "team.1.job.1.status", []byte(body), publish.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-sink.stalled:
			case <-time.After(15 * time.Second):
				t.Fatal("the consumer did not reach the stalling event")
			}
			closeConnectionsNamed(t, node, "eventstream-bridge "+queue)
			poll.Until(t, 10*time.Second, "the consumer's connection closed", func() bool {
				conn := c.conn.Load()
				return conn == nil || conn.IsClosed()
			})
			close(sink.release) // its ack fails: the event comes again on the next connection

			poll.Until(t, 30*time.Second, "every event consumed, the queue settled", func() bool {
				got := sink.received()
				return testutil.ToFloat64(m.Reconnects) >= 1 && len(got) >= n && got[len(got)-1] == want[n-1] &&
					c.Consuming() && queueReady(t, node.URI, queue) == 0
			})
			if got := sink.received(); !slices.Equal(got, want) {
				t.Fatalf("the hub got %d events, want e1..e%d once each in order: %v", len(got), n, got)
			}
			redelivered, suppressed := testutil.ToFloat64(m.Redelivered), testutil.ToFloat64(m.RedeliveredSuppressed)
			if suppressed < 1 || suppressed > redelivered {
				t.Fatalf("suppressed %v of %v redelivered; want ≥ 1 (at least the stalled event)", suppressed, redelivered)
			}
			t.Logf("%d events, %v redelivered after the reset, %v of them suppressed", n, redelivered, suppressed)
		})
	}
}

// closeConnectionsNamed closes, through the management API, the connections whose
// client-provided name is name (bridge/app's fault tests have the same helper).
func closeConnectionsNamed(t *testing.T, node *rabbitmqtest.Node, name string) {
	t.Helper()
	var closed int
	poll.Until(t, 10*time.Second, "the connection listed by the management API", func() bool {
		req, _ := http.NewRequest(http.MethodGet, node.ManagementURI+"/api/connections?columns=name,user_provided_name", nil)
		req.SetBasicAuth(node.Username, node.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var conns []struct {
			Name             string `json:"name"`
			UserProvidedName string `json:"user_provided_name"`
		}
		if json.NewDecoder(resp.Body).Decode(&conns) != nil {
			return false
		}
		for _, c := range conns {
			if c.UserProvidedName != name {
				continue
			}
			del, _ := http.NewRequest(http.MethodDelete, node.ManagementURI+"/api/connections/"+url.PathEscape(c.Name), nil)
			del.SetBasicAuth(node.Username, node.Password)
			del.Header.Set("X-Reason", "test: connection reset")
			if r, err := http.DefaultClient.Do(del); err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusNoContent {
					closed++
				}
			}
		}
		return closed > 0
	})
}
