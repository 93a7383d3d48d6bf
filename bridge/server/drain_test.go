package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// recordingSink keeps what a stream writes.
type recordingSink struct {
	mu  sync.Mutex
	out strings.Builder
}

func (s *recordingSink) context() context.Context { return context.Background() }

func (s *recordingSink) write(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.Write(b)
	return true
}

func (s *recordingSink) writeFrames(gap *hub.Gap, frames []*hub.Frame) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gap != nil {
		s.out.Write(appendGap(nil, gap))
	}
	for _, f := range frames {
		s.out.Write(f.Bytes)
	}
	return true
}

func (s *recordingSink) close() {}

// TestDrainWritesEverythingHandedToTheStream (issue 14, item 5): a stream that holds a
// replayed backlog and buffered live events when the bridge drains writes all of them before
// `: draining` (they were acked; the old code wrote one batch and cut the rest). The writer's
// choice between "drain" and "something to take" is random, so it is tried 20 times.
func TestDrainWritesEverythingHandedToTheStream(t *testing.T) {
	for round := 0; round < 20; round++ {
		m := metrics.New()
		h := hub.New(hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, BufferSize: 64})
		handler, err := NewHandler(Config{Hub: h, Template: template, TenantParam: "team_id", Authenticator: auth.None(),
			Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Heartbeat: time.Hour, Retry: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		publish := func(data string) {
			h.Publish(hub.Message{RoutingKey: "team.1.job.1.status", Values: []string{"1", "1"}, Data: []byte(data)})
		}
		publish("1")
		publish("2")
		publish("3")
		s, gap := h.Subscribe(hub.Filter{nil, nil}, hub.ParseCursor(hub.EpochIDs, "0000abcd-1")) // backlog: 2, 3
		publish("4")                                                                             // buffered
		publish("5")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go func() { _ = handler.Drain(ctx) }()
		<-handler.drain

		sink := &recordingSink{}
		handler.stream(sink, "/", s, gap, time.Time{})
		cancel()
		h.Unsubscribe(s)
		out := sink.out.String()
		for _, id := range []string{"0000abcd-2", "0000abcd-3", "0000abcd-4", "0000abcd-5"} {
			at := strings.Index(out, "id: "+id+"\n")
			if at < 0 || at > strings.Index(out, ": draining") {
				t.Fatalf("round %d: event %s not written before `: draining`:\n%s", round, id, out)
			}
		}
	}
}
