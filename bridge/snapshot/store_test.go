package snapshot

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

// clock is a settable test clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

var epoch = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

// frame returns the hub's frame of an event of team and job at offset, published at published
// (zero: unknown).
func frame(offset int64, team, job, data string, published time.Time) *hub.Frame {
	return hub.StreamFrame(hub.Message{
		RoutingKey: "team." + team + ".job." + job + ".status",
		Values:     []string{team, job},
		Data:       []byte(data),
		Offset:     offset,
		Published:  published,
	})
}

func newStore(cfg Config) (*Store, *clock) {
	c := &clock{now: epoch}
	cfg.Now = c.Now
	return New(cfg), c
}

// keysOf returns "routingKey=data" of frames, sorted.
func keysOf(frames []*hub.Frame) []string {
	var out []string
	for _, f := range frames {
		out = append(out, f.RoutingKey+"="+string(bytes.TrimSuffix(bytes.TrimPrefix(f.Bytes[len("id: "+f.ID+"\n"):], []byte("data: ")), []byte("\n\n"))))
	}
	slices.Sort(out)
	return out
}

func TestStoreKeepsTheNewestEventPerKey(t *testing.T) {
	s, _ := newStore(Config{MaxKeys: 10, MaxBytes: 1 << 20})
	s.Put(frame(1, "42", "1", `"queued"`, time.Time{}))
	s.Put(frame(2, "42", "2", `"queued"`, time.Time{}))
	s.Put(frame(3, "42", "1", `"running"`, time.Time{}))
	s.Put(frame(4, "43", "1", `"done"`, time.Time{}))
	got := keysOf(s.Collect(hub.Filter{nil, nil}, nil))
	want := []string{`team.42.job.1.status="running"`, `team.42.job.2.status="queued"`, `team.43.job.1.status="done"`}
	if !slices.Equal(got, want) {
		t.Errorf("collect all = %q, want %q", got, want)
	}
	got = keysOf(s.Collect(hub.Filter{{"42"}, nil}, nil))
	if !slices.Equal(got, want[:2]) {
		t.Errorf("collect team 42 = %q, want %q", got, want[:2])
	}
	got = keysOf(s.Collect(hub.Filter{{"42", "43"}, {"1"}}, nil))
	if !slices.Equal(got, []string{want[0], want[2]}) {
		t.Errorf("collect job 1 of teams 42, 43 = %q", got)
	}
	if got := s.Collect(hub.Filter{{"44"}, nil}, nil); len(got) != 0 {
		t.Errorf("collect team 44 = %d frames, want none", len(got))
	}
	if keys, _ := s.Stats(); keys != 3 {
		t.Errorf("keys = %d, want 3", keys)
	}
}

// The least recently updated keys go first when MaxKeys is reached; an update makes a key
// recent again.
func TestStoreEvictsTheLeastRecentlyUpdatedKeysBeyondMaxKeys(t *testing.T) {
	s, _ := newStore(Config{MaxKeys: 3, MaxBytes: 1 << 20})
	for i, job := range []string{"1", "2", "3", "1", "4"} {
		s.Put(frame(int64(i), "42", job, `"v`+strconv.Itoa(i)+`"`, time.Time{}))
	}
	got := keysOf(s.Collect(hub.Filter{nil, nil}, nil))
	want := []string{`team.42.job.1.status="v3"`, `team.42.job.3.status="v2"`, `team.42.job.4.status="v4"`}
	if !slices.Equal(got, want) {
		t.Errorf("after 5 puts into 3 keys: %q, want %q (job 2 was least recently updated)", got, want)
	}
}

// The bytes held never exceed MaxBytes, and are the frames' held bytes plus the store's
// bookkeeping per key, whatever the mix of puts and replacements.
func TestStoreBytesStayWithinMaxBytes(t *testing.T) {
	const maxBytes = 64 << 10
	s, _ := newStore(Config{MaxKeys: 1 << 20, MaxBytes: maxBytes})
	live := map[string]*hub.Frame{}
	for i := 0; i < 2000; i++ {
		job := strconv.Itoa(i % 300)
		f := frame(int64(i), "42", job, `"`+string(bytes.Repeat([]byte("x"), i%700))+`"`, time.Time{})
		s.Put(f)
		live[f.RoutingKey] = f
		keys, held := s.Stats()
		if held > maxBytes {
			t.Fatalf("put %d: %d bytes held, bound %d", i, held, maxBytes)
		}
		want := 0
		frames := s.Collect(hub.Filter{nil, nil}, nil)
		for _, g := range frames {
			if live[g.RoutingKey] != g {
				t.Fatalf("put %d: key %s holds an older frame", i, g.RoutingKey)
			}
			want += g.HeldBytes() + entryOverhead
		}
		if held != want || keys != len(frames) {
			t.Fatalf("put %d: stats %d keys, %d bytes; the frames held are %d keys, %d bytes", i, keys, held, len(frames), want)
		}
	}
}

// An event larger than MaxBytes on its own is not kept, and its key's older event goes too:
// it is no longer the newest.
func TestStoreDropsAKeyWhoseNewestEventExceedsMaxBytes(t *testing.T) {
	s, _ := newStore(Config{MaxKeys: 10, MaxBytes: 4096})
	s.Put(frame(1, "42", "1", `"small"`, time.Time{}))
	s.Put(frame(2, "42", "2", `"small"`, time.Time{}))
	s.Put(frame(3, "42", "1", `"`+string(bytes.Repeat([]byte("x"), 8192))+`"`, time.Time{}))
	got := keysOf(s.Collect(hub.Filter{nil, nil}, nil))
	if want := []string{`team.42.job.2.status="small"`}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Age counts from the publish time when the event has one (the same on every replica), else
// from the put; expired keys are not served and are removed by Stats.
func TestStoreServesNoKeyOlderThanMaxAge(t *testing.T) {
	s, c := newStore(Config{MaxKeys: 10, MaxBytes: 1 << 20, MaxAge: time.Hour})
	s.Put(frame(1, "42", "1", `"old"`, epoch.Add(-50*time.Minute)))
	s.Put(frame(2, "42", "2", `"unstamped"`, time.Time{}))
	s.Put(frame(3, "42", "3", `"ancient"`, epoch.Add(-2*time.Hour))) // removed at once
	if got, want := keysOf(s.Collect(hub.Filter{nil, nil}, nil)), []string{`team.42.job.1.status="old"`, `team.42.job.2.status="unstamped"`}; !slices.Equal(got, want) {
		t.Errorf("at start: %q, want %q", got, want)
	}
	c.now = epoch.Add(30 * time.Minute)
	if got, want := keysOf(s.Collect(hub.Filter{nil, nil}, nil)), []string{`team.42.job.2.status="unstamped"`}; !slices.Equal(got, want) {
		t.Errorf("30 minutes later: %q, want %q", got, want)
	}
	if keys, _ := s.Stats(); keys != 1 {
		t.Errorf("30 minutes later: %d keys held, want 1", keys)
	}
	c.now = epoch.Add(61 * time.Minute)
	if keys, held := s.Stats(); keys != 0 || held != 0 {
		t.Errorf("61 minutes later: %d keys, %d bytes held, want none", keys, held)
	}
}

func TestStorePartial(t *testing.T) {
	partial := true
	s, _ := newStore(Config{Partial: func() bool { return partial }})
	if !s.Partial() {
		t.Error("Partial() = false, want true")
	}
	partial = false
	if s.Partial() {
		t.Error("Partial() = true, want false")
	}
	if New(Config{}).Partial() {
		t.Error("a store without a Partial function is partial")
	}
}

// liveHeap returns the bytes of heap objects still reachable after a full collection.
func liveHeap() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}

// The byte bound holds for the live heap: what the store keeps (frames no longer held by
// anything else, its entries and maps) is what it counts, for small and large events.
func TestStoreHeapStaysWithinItsByteBound(t *testing.T) {
	for _, size := range []int{200, 16 << 10} {
		t.Run(fmt.Sprintf("%d-byte events", size), func(t *testing.T) {
			const bound = 16 << 20
			data := `"` + string(bytes.Repeat([]byte("x"), size-2)) + `"`
			before := liveHeap()
			s, _ := newStore(Config{MaxKeys: 1 << 30, MaxBytes: bound})
			for i := 0; i < 3*bound/size; i++ {
				s.Put(frame(int64(i), strconv.Itoa(i%50), strconv.Itoa(i), data, time.Time{}))
			}
			heldHeap := liveHeap() - before
			keys, counted := s.Stats()
			runtime.KeepAlive(s)
			t.Logf("%d keys of %d-byte events: counted %.2f MiB, live heap %.2f MiB (bound %d MiB), %d bytes per key",
				keys, size, float64(counted)/(1<<20), float64(heldHeap)/(1<<20), bound>>20, heldHeap/keys)
			if heldHeap > bound*11/10 {
				t.Errorf("store holds %.2f MiB of live heap, bound %d MiB (+10%%)", float64(heldHeap)/(1<<20), bound>>20)
			}
			if counted < bound*9/10 {
				t.Errorf("store counts only %.2f MiB: the test did not fill it", float64(counted)/(1<<20))
			}
		})
	}
}
