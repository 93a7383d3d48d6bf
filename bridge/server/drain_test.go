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

func (s *recordingSink) writeBuffers(bufs [][]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bufs {
		s.out.Write(b)
	}
	return true
}

func (s *recordingSink) close() {}

func (s *recordingSink) wakeWhenGone(func()) func() { return func() {} }

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
		runStream(handler, sink, streamStart{path: "/"}, s, gap, nil)
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

// output returns what the sink got so far.
func (s *recordingSink) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// TestEndStreamsEndsOnlyTheOpenOnes: EndStreams (a stream replica that lost the broker) ends
// the streams open at that moment, after what was handed to them, with a short retry: hint;
// a stream opened afterwards is served as usual.
func TestEndStreamsEndsOnlyTheOpenOnes(t *testing.T) {
	h := hub.New(hub.Config{Placeholders: 2, IDs: hub.OffsetIDs, ReplaySize: 10})
	handler, err := NewHandler(Config{Hub: h, Template: template, TenantParam: "team_id", Authenticator: auth.None(),
		Metrics: metrics.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Heartbeat: time.Hour,
		Retry: 3 * time.Second, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(offset int64) {
		h.Publish(hub.Message{RoutingKey: "team.1.job.1.status", Values: []string{"1", "1"}, Data: []byte("{}"), Offset: offset})
	}
	run := func(s *hub.Subscriber) (*recordingSink, chan struct{}) {
		sink, done := &recordingSink{}, make(chan struct{})
		go func() {
			defer close(done)
			runStream(handler, sink, streamStart{path: "/"}, s, nil, nil)
		}()
		return sink, done
	}
	waitOutput := func(sink *recordingSink, want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(sink.output(), want); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stream output lacks %q:\n%s", want, sink.output())
			}
		}
	}

	before, _ := h.Subscribe(hub.Filter{nil, nil}, hub.Cursor{})
	defer h.Unsubscribe(before)
	beforeOut, beforeDone := run(before)
	waitOutput(beforeOut, ": ok")
	publish(1)
	handler.EndStreams("broker unreachable")
	select {
	case <-beforeDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the open stream was not ended")
	}
	out := beforeOut.output()
	if !strings.Contains(out, "id: 1\n") || !strings.Contains(out, ": broker unreachable") || !strings.Contains(out, "retry: 1000\n") {
		t.Fatalf("ended stream: want event 1, the comment and retry 1000 (retry/6 + 0.5·retry/3):\n%s", out)
	}

	after, _ := h.Subscribe(hub.Filter{nil, nil}, hub.Cursor{})
	defer h.Unsubscribe(after)
	afterOut, afterDone := run(after)
	waitOutput(afterOut, ": ok")
	publish(2)
	waitOutput(afterOut, "id: 2\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := handler.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	<-afterDone
	if strings.Contains(afterOut.output(), "broker unreachable") {
		t.Fatalf("a stream opened after EndStreams was ended by it:\n%s", afterOut.output())
	}
}

// runStream runs an already subscribed stream in the calling goroutine until it ends, as serve
// does for a sink the writer pool cannot write to; the caller unsubscribes.
func runStream(h *Handler, sink streamSink, st streamStart, s *hub.Subscriber, gap *hub.Gap, snap *hub.Snapshot) {
	x := &stream{h: h, sink: sink, st: st, s: s}
	if x.open(gap, snap) {
		x.run()
	}
	x.stopSignals()
}
