package hub

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// drops records OnDrop calls.
type drops struct {
	mu          sync.Mutex
	n           map[string]int
	disconnects int
}

func (d *drops) disconnect() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disconnects++
}

func (d *drops) record(reason string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[reason] += n
}

func (d *drops) get(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[reason]
}

func newTestHub(t *testing.T, cfg Config) (*Hub, *drops) {
	t.Helper()
	d := &drops{}
	cfg.Placeholders = 2
	if cfg.Epoch == "" {
		cfg.Epoch = "0000abcd"
	}
	cfg.OnDrop = d.record
	cfg.OnDisconnect = d.disconnect
	return New(cfg), d
}

func publish(h *Hub, team, job, data string) *Frame {
	f, _ := h.Publish(Message{
		RoutingKey: "team." + team + ".job." + job + ".status",
		Values:     []string{team, job},
		Data:       []byte(data),
	})
	return f
}

func take(t *testing.T, s *Subscriber) ([]string, *Gap) {
	t.Helper()
	frames, gap, closed := s.Take(nil)
	if closed {
		t.Fatal("subscriber closed")
	}
	var ids []string
	for _, f := range frames {
		ids = append(ids, f.ID)
	}
	return ids, gap
}

func TestFilterMatches(t *testing.T) {
	tests := []struct {
		filter Filter
		values []string
		want   bool
	}{
		{Filter{nil, nil}, []string{"1", "2"}, true},
		{Filter{{"1"}, nil}, []string{"1", "2"}, true},
		{Filter{{"1", "3"}, {"2"}}, []string{"3", "2"}, true},
		{Filter{{"1"}, {"9"}}, []string{"1", "2"}, false},
		{Filter{{"x"}, nil}, []string{"1", "2"}, false},
	}
	for _, tt := range tests {
		if got := tt.filter.Matches(tt.values); got != tt.want {
			t.Errorf("%v.Matches(%v) = %v", tt.filter, tt.values, got)
		}
	}
}

// TestFanOutByFilter checks that each subscriber gets exactly the events its filter matches,
// whichever placeholder the hub indexes it under.
func TestFanOutByFilter(t *testing.T) {
	h, _ := newTestHub(t, Config{})
	all, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	team1, _ := h.Subscribe(Filter{{"1"}, nil}, Cursor{})
	team12, _ := h.Subscribe(Filter{{"1", "2"}, nil}, Cursor{})
	job7, _ := h.Subscribe(Filter{nil, {"7"}}, Cursor{})
	team1job7, _ := h.Subscribe(Filter{{"1"}, {"7"}}, Cursor{})
	team2job7, _ := h.Subscribe(Filter{{"2"}, {"7"}}, Cursor{})

	publish(h, "1", "7", "a") // 0000abcd-1
	publish(h, "1", "8", "b") // -2
	publish(h, "2", "7", "c") // -3
	_, n := h.Publish(Message{RoutingKey: "team.3.job.9.status", Values: []string{"3", "9"}, Data: []byte("d")})
	if n != 1 {
		t.Errorf("event for team 3 matched %d subscribers, want 1 (all)", n)
	}

	want := map[*Subscriber][]string{
		all:       {"0000abcd-1", "0000abcd-2", "0000abcd-3", "0000abcd-4"},
		team1:     {"0000abcd-1", "0000abcd-2"},
		team12:    {"0000abcd-1", "0000abcd-2", "0000abcd-3"},
		job7:      {"0000abcd-1", "0000abcd-3"},
		team1job7: {"0000abcd-1"},
		team2job7: {"0000abcd-3"},
	}
	for s, ids := range want {
		got, gap := take(t, s)
		if !slices.Equal(got, ids) || gap != nil {
			t.Errorf("filter %v got %v (gap %v), want %v", s.Filter(), got, gap, ids)
		}
	}
	h.Unsubscribe(team1)
	h.Unsubscribe(team1) // idempotent
	if h.Len() != 5 {
		t.Errorf("Len = %d after unsubscribe, want 5", h.Len())
	}
	if _, n := h.Publish(Message{RoutingKey: "team.1.job.8.status", Values: []string{"1", "8"}}); n != 2 {
		t.Errorf("after unsubscribe matched %d, want 2 (all, team12)", n)
	}
	if _, _, closed := team1.Take(nil); !closed {
		t.Error("unsubscribed subscriber is not closed")
	}
}

func TestFrameEncodedOnceAndShared(t *testing.T) {
	h, _ := newTestHub(t, Config{})
	a, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	b, _ := h.Subscribe(Filter{{"1"}, nil}, Cursor{})
	f := publish(h, "1", "7", "line1\nline2")
	if string(f.Bytes) != "id: 0000abcd-1\ndata: line1\ndata: line2\n\n" {
		t.Fatalf("frame = %q", f.Bytes)
	}
	fa, _, _ := a.Take(nil)
	fb, _, _ := b.Take(nil)
	if fa[0] != f || fb[0] != f {
		t.Fatal("subscribers did not get the shared frame")
	}
}

func TestOverflowDropOldest(t *testing.T) {
	h, d := newTestHub(t, Config{BufferSize: 3, Overflow: DropOldest})
	s, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	for i := 1; i <= 5; i++ {
		publish(h, "1", "7", fmt.Sprint(i))
	}
	ids, gap := take(t, s)
	if !slices.Equal(ids, []string{"0000abcd-3", "0000abcd-4", "0000abcd-5"}) {
		t.Errorf("kept %v", ids)
	}
	if gap == nil || gap.Reason != DropReasonOverflow || gap.Dropped != 2 {
		t.Errorf("gap = %+v, want overflow with 2 dropped", gap)
	}
	if d.get(DropReasonOverflow) != 2 {
		t.Errorf("OnDrop overflow = %d", d.get(DropReasonOverflow))
	}
	// The gap is reported once.
	publish(h, "1", "7", "6")
	if _, gap := take(t, s); gap != nil {
		t.Errorf("gap repeated: %+v", gap)
	}
}

func TestOverflowLastValue(t *testing.T) {
	h, d := newTestHub(t, Config{BufferSize: 3, Overflow: LastValue})
	s, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	publish(h, "1", "7", "a")  // -1 key job 7
	publish(h, "1", "8", "b")  // -2 key job 8
	publish(h, "1", "7", "a2") // -3 key job 7 (buffer not full: both kept)
	publish(h, "1", "8", "b2") // -4 full: replaces -2 (oldest of job 8)
	ids, gap := take(t, s)
	if !slices.Equal(ids, []string{"0000abcd-1", "0000abcd-3", "0000abcd-4"}) || gap != nil {
		t.Errorf("kept %v gap %+v", ids, gap)
	}
	if d.get(DropReasonSuperseded) != 1 {
		t.Errorf("superseded = %d", d.get(DropReasonSuperseded))
	}
	// Full with all-distinct keys: falls back to dropping the oldest with a gap.
	publish(h, "1", "1", "x")
	publish(h, "1", "2", "x")
	publish(h, "1", "3", "x")
	publish(h, "1", "4", "x")
	ids, gap = take(t, s)
	if len(ids) != 3 || ids[0] != "0000abcd-6" || gap == nil || gap.Dropped != 1 {
		t.Errorf("distinct keys: kept %v gap %+v", ids, gap)
	}
}

func TestOverflowDisconnect(t *testing.T) {
	h, d := newTestHub(t, Config{BufferSize: 2, Overflow: Disconnect})
	slow, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	fast, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	for i := 0; i < 2; i++ {
		publish(h, "1", "7", "x")
		take(t, fast)
	}
	publish(h, "1", "7", "x")
	take(t, fast)
	if _, _, closed := slow.Take(nil); !closed {
		t.Fatal("slow subscriber not disconnected")
	}
	// The buffered events are in the replay ring: the client resumes them, nothing is dropped.
	if d.get("disconnect") != 0 || len(d.n) != 0 {
		t.Errorf("drops counted for a disconnected subscriber: %v", d.n)
	}
	if d.disconnects != 1 {
		t.Errorf("disconnects = %d, want 1", d.disconnects)
	}
	select {
	case <-slow.Notify():
	default:
		t.Error("disconnect did not notify the writer")
	}
}

func TestResumeEpochIDs(t *testing.T) {
	h, _ := newTestHub(t, Config{ReplaySize: 3})
	for i := 1; i <= 5; i++ {
		publish(h, fmt.Sprint(i%2), "7", "x") // teams 1,0,1,0,1 → ring keeps seq 3,4,5
	}
	tests := []struct {
		name   string
		cursor string
		filter Filter
		want   []string
		gapWhy string
	}{
		{"no id: live only", "", Filter{nil, nil}, nil, ""},
		{"inside window", "0000abcd-3", Filter{nil, nil}, []string{"0000abcd-4", "0000abcd-5"}, ""},
		{"window start is floor", "0000abcd-2", Filter{nil, nil}, []string{"0000abcd-3", "0000abcd-4", "0000abcd-5"}, ""},
		{"filtered replay", "0000abcd-2", Filter{{"1"}, nil}, []string{"0000abcd-3", "0000abcd-5"}, ""},
		{"latest: nothing to replay", "0000abcd-5", Filter{nil, nil}, nil, ""},
		{"expired", "0000abcd-1", Filter{nil, nil}, nil, "expired"},
		{"foreign epoch, first event left the ring", "ffffffff-4", Filter{nil, nil}, nil, "unknown_id"},
		{"future", "0000abcd-9", Filter{nil, nil}, nil, "unknown_id"},
		{"garbage", "hello", Filter{nil, nil}, nil, "unknown_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, gap := h.Subscribe(tt.filter, ParseCursor(EpochIDs, tt.cursor))
			defer h.Unsubscribe(s)
			if (gap == nil) != (tt.gapWhy == "") || (gap != nil && gap.Reason != tt.gapWhy) {
				t.Fatalf("gap = %+v, want %q", gap, tt.gapWhy)
			}
			got, _ := take(t, s)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("replayed %v, want %v", got, tt.want)
			}
		})
	}
}

// TestForeignEpochReplaysFromTheFirstEvent: an id of an earlier bridge process gets a gap and
// then every event of this process from its first one, while the ring still holds it (the
// backlog that waited in the durable queue while no bridge ran), filtered, then live events.
func TestForeignEpochReplaysFromTheFirstEvent(t *testing.T) {
	h, _ := newTestHub(t, Config{ReplaySize: 4})
	publish(h, "1", "7", "a")
	publish(h, "2", "7", "b")
	publish(h, "1", "7", "c")
	s, gap := h.Subscribe(Filter{{"1"}, nil}, ParseCursor(EpochIDs, "ffffffff-900"))
	if gap == nil || gap.Reason != "unknown_id" {
		t.Fatalf("gap = %+v, want unknown_id", gap)
	}
	publish(h, "1", "7", "d")
	first, _ := take(t, s)
	second, _ := take(t, s)
	if got := append(first, second...); !slices.Equal(got, []string{"0000abcd-1", "0000abcd-3", "0000abcd-4"}) {
		t.Fatalf("after a foreign id: %v, want this process's events from the first", got)
	}
	h.Unsubscribe(s)

	publish(h, "1", "7", "e") // seq 5: the ring (4) no longer holds seq 1
	late, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(EpochIDs, "ffffffff-900"))
	defer h.Unsubscribe(late)
	if ids, _ := take(t, late); gap == nil || len(ids) != 0 {
		t.Fatalf("foreign id after the first event left the ring: gap %+v, replayed %v; want a gap and live only", gap, ids)
	}
}

// TestAdvanceOverMalformedIsNoGap: offsets consumed without an event (malformed messages)
// move the hub's position, so a cursor just before them is not "expired".
func TestAdvanceOverMalformedIsNoGap(t *testing.T) {
	h, _ := newTestHub(t, Config{IDs: OffsetIDs, ReplaySize: 3})
	early, _ := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "9"))
	h.Advance(10) // the first offset this replica reads is malformed
	h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: []string{"1", "7"}, Offset: 11})
	if ids, gap := take(t, early); gap != nil || !slices.Equal(ids, []string{"11"}) {
		t.Fatalf("cursor 9, malformed 10, event 11: ids %v gap %+v", ids, gap)
	}
	h.Advance(12)
	late, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "12"))
	defer h.Unsubscribe(late)
	h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: []string{"1", "7"}, Offset: 13})
	if ids, _ := take(t, late); gap != nil || !slices.Equal(ids, []string{"13"}) {
		t.Fatalf("cursor at a malformed offset: ids %v gap %+v", ids, gap)
	}
	if f, _ := h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: []string{"1", "7"}, Offset: 12}); f != nil {
		t.Fatal("an offset at or below an advanced position was published")
	}
}

func TestResumeReplayThenLiveInOrder(t *testing.T) {
	h, _ := newTestHub(t, Config{ReplaySize: 10, BufferSize: 2})
	publish(h, "1", "7", "a")
	publish(h, "1", "7", "b")
	publish(h, "1", "7", "c")
	s, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(EpochIDs, "0000abcd-1"))
	if gap != nil {
		t.Fatal(gap)
	}
	publish(h, "1", "7", "d")
	first, _ := take(t, s)
	second, _ := take(t, s)
	if !slices.Equal(append(first, second...), []string{"0000abcd-2", "0000abcd-3", "0000abcd-4"}) {
		t.Fatalf("order %v then %v", first, second)
	}
}

func TestResumeOffsetIDs(t *testing.T) {
	h, _ := newTestHub(t, Config{IDs: OffsetIDs, ReplaySize: 3})

	// Subscribed before the hub saw any offset: decided at the first publish.
	early, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "5"))
	if gap != nil {
		t.Fatal(gap)
	}
	lost, _ := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "2"))

	for _, off := range []int64{10, 11, 12, 13, 14} {
		h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: []string{"1", "7"}, Offset: off})
	}
	if f, _ := h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: []string{"1", "7"}, Offset: 13}); f != nil {
		t.Error("a redelivered offset was published again")
	}
	// cursor 5 < first offset 10 − 1: events 6..9 are not in memory: gap. Same for 2.
	for _, s := range []*Subscriber{early, lost} {
		ids, gap := take(t, s)
		if gap == nil || gap.Reason != "expired" || len(ids) != 5 {
			t.Errorf("early subscriber: ids %v gap %+v", ids, gap)
		}
	}

	ring, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "12"))
	if ids, _ := take(t, ring); gap != nil || !slices.Equal(ids, []string{"13", "14"}) {
		t.Errorf("ring resume: %v gap %+v", ids, gap)
	}
	// Another replica is ahead: skip what this one has not reached yet, no gap.
	ahead, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "16"))
	for _, off := range []int64{15, 16, 17} {
		h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: []string{"1", "7"}, Offset: off})
	}
	if ids, _ := take(t, ahead); gap != nil || !slices.Equal(ids, []string{"17"}) {
		t.Errorf("ahead resume: %v gap %+v", ids, gap)
	}
	old, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(OffsetIDs, "11"))
	if gap == nil || gap.Reason != "expired" {
		t.Errorf("resume before the ring: gap %+v", gap)
	}
	h.Unsubscribe(old)
}

func TestReplayRingByteBound(t *testing.T) {
	h, _ := newTestHub(t, Config{ReplaySize: 100, ReplayMaxBytes: 100})
	for i := 0; i < 10; i++ {
		publish(h, "1", "7", strings.Repeat("x", 30))
	}
	if h.ringBytes > 100 || h.ringLen >= 10 {
		t.Fatalf("ring holds %d bytes in %d frames", h.ringBytes, h.ringLen)
	}
	s, gap := h.Subscribe(Filter{nil, nil}, ParseCursor(EpochIDs, "0000abcd-1"))
	if gap == nil || gap.Reason != "expired" {
		t.Fatalf("resume before the byte-bounded window: gap %+v", gap)
	}
	h.Unsubscribe(s)
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		scheme IDScheme
		in     string
		want   Cursor
	}{
		{EpochIDs, "", Cursor{}},
		{EpochIDs, "0a1b2c3d-42", Cursor{Present: true, Valid: true, Epoch: "0a1b2c3d", Pos: 42}},
		{EpochIDs, "0A1B2C3D-42", Cursor{Present: true}},
		{EpochIDs, "0a1b2c3d-", Cursor{Present: true}},
		{EpochIDs, "0a1b2c3d-042", Cursor{Present: true}},
		{EpochIDs, "0a1b2c3d--1", Cursor{Present: true}},
		{EpochIDs, "0a1b2c3d-99999999999999999999", Cursor{Present: true}},
		{EpochIDs, "42", Cursor{Present: true}},
		{OffsetIDs, "0", Cursor{Present: true, Valid: true, Pos: 0}},
		{OffsetIDs, "123", Cursor{Present: true, Valid: true, Pos: 123}},
		{OffsetIDs, "+1", Cursor{Present: true}},
		{OffsetIDs, "1 ", Cursor{Present: true}},
		{OffsetIDs, "9223372036854775808", Cursor{Present: true}},
		{OffsetIDs, strings.Repeat("1", 200), Cursor{Present: true}},
	}
	for _, tt := range tests {
		if got := ParseCursor(tt.scheme, tt.in); got != tt.want {
			t.Errorf("ParseCursor(%d, %q) = %+v, want %+v", tt.scheme, tt.in, got, tt.want)
		}
	}
}

// FuzzParseCursor checks that any Last-Event-ID parses without panic and that every valid
// cursor is one the hub could have written (formatID round-trips).
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0a1b2c3d-42", "42", "0", "-1", "0a1b2c3d-", "ffffffff-9223372036854775807", "\x00", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		for _, scheme := range []IDScheme{EpochIDs, OffsetIDs} {
			c := ParseCursor(scheme, id)
			if c.Present != (id != "") {
				t.Fatalf("Present = %v for %q", c.Present, id)
			}
			if !c.Valid {
				continue
			}
			if c.Pos < 0 {
				t.Fatalf("negative position from %q", id)
			}
			if back := formatID(scheme, c.Epoch, c.Pos); back != id {
				t.Fatalf("ParseCursor(%q) does not round-trip: %q", id, back)
			}
		}
	})
}

// TestConcurrentPublishSubscribe runs publishers' and subscribers' paths together under the
// race detector: every subscriber that stays receives every event in order.
func TestConcurrentPublishSubscribe(t *testing.T) {
	h, _ := newTestHub(t, Config{BufferSize: 10000, ReplaySize: 100})
	const events = 2000
	var wg sync.WaitGroup
	stable, _ := h.Subscribe(Filter{{"1"}, nil}, Cursor{})
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // churn: subscribe and unsubscribe while publishing
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, _ := h.Subscribe(Filter{{"1"}, {"7"}}, ParseCursor(EpochIDs, "0000abcd-1"))
			s.Take(nil)
			h.Unsubscribe(s)
		}
	}()
	for i := 0; i < events; i++ {
		publish(h, "1", "7", "x")
	}
	close(stop)
	wg.Wait()
	ids, gap := take(t, stable)
	if len(ids) != events || gap != nil || ids[events-1] != fmt.Sprintf("0000abcd-%d", events) {
		t.Fatalf("stable subscriber got %d events, gap %+v", len(ids), gap)
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d", h.Len())
	}
}

func TestStreamSubscriberIsFlowControlled(t *testing.T) {
	h, _ := newTestHub(t, Config{IDs: OffsetIDs, BufferSize: 2})
	s := h.NewStreamSubscriber(Filter{{"1"}, nil})
	if h.Len() != 0 {
		t.Fatal("a stream subscriber must not be fed by the hub")
	}
	frame := func(off int64) *Frame {
		return StreamFrame(Message{RoutingKey: "team.1.job.1.status", Values: []string{"1", "1"}, Data: []byte("x"), Offset: off})
	}
	ctx := t.Context()
	s.MarkGap("expired")
	for off := int64(10); off < 12; off++ {
		if err := s.OfferWait(ctx, frame(off)); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- s.OfferWait(ctx, frame(12)) }()
	select {
	case err := <-blocked:
		t.Fatalf("OfferWait on a full buffer returned %v instead of waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	ids, gap := take(t, s)
	if !slices.Equal(ids, []string{"10", "11"}) || gap == nil || gap.Reason != "expired" {
		t.Fatalf("took %v gap %+v", ids, gap)
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if ids, _ := take(t, s); !slices.Equal(ids, []string{"12"}) {
		t.Fatalf("after space: %v", ids)
	}
	s.Close()
	if err := s.OfferWait(ctx, frame(13)); err != nil {
		t.Fatalf("OfferWait after Close = %v, want nil", err)
	}
}
