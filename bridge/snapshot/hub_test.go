package snapshot

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

func newHub(ids hub.IDScheme, bufferSize int) (*hub.Hub, *Store) {
	store := New(Config{MaxKeys: 1 << 20, MaxBytes: 1 << 30})
	return hub.New(hub.Config{Placeholders: 2, IDs: ids, Epoch: "0000abcd", BufferSize: bufferSize,
		ReplaySize: 100, LastValues: store}), store
}

func publishJob(h *hub.Hub, offset int64, team, job string, version int) {
	h.Publish(hub.Message{RoutingKey: "team." + team + ".job." + job + ".status", Values: []string{team, job},
		Data: []byte(strconv.Itoa(version)), Offset: offset})
}

// version returns the data of a frame (the version number published).
func version(f *hub.Frame) int {
	b := f.Bytes[len("id: "+f.ID+"\ndata: "):]
	v, _ := strconv.Atoi(string(b[:len(b)-2]))
	return v
}

// drain takes everything s holds now.
func drain(s *hub.Subscriber) (frames []*hub.Frame, gap *hub.Gap) {
	for {
		batch, g, _ := s.Take(nil)
		if g != nil {
			gap = g
		}
		if len(batch) == 0 && g == nil {
			return frames, gap
		}
		frames = append(frames, batch...)
	}
}

// While events are published without pause, clients subscribing with a snapshot get, per key,
// the snapshot's newest version and then exactly the later versions live: no version twice,
// none missing between the snapshot and live, and the final state equals the publisher's.
func TestSnapshotAndLiveEventsNeitherOverlapNorLeaveAGap(t *testing.T) {
	for _, ids := range []hub.IDScheme{hub.EpochIDs, hub.OffsetIDs} {
		t.Run(map[hub.IDScheme]string{hub.EpochIDs: "epoch ids", hub.OffsetIDs: "stream offsets"}[ids], func(t *testing.T) {
			const jobs, rounds, clients = 50, 200, 20
			h, _ := newHub(ids, jobs*rounds)
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				subs  = make([]*hub.Subscriber, clients)
				snaps = make([]*hub.Snapshot, clients)
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				close(start)
				for i := 0; i < jobs*rounds; i++ {
					publishJob(h, int64(i), "42", strconv.Itoa(i%jobs), i/jobs+1)
				}
			}()
			<-start
			for c := range clients {
				subs[c], _, snaps[c] = h.SubscribeSnapshot(hub.Filter{{"42"}, nil}, hub.Cursor{})
				time.Sleep(time.Duration(c) * 50 * time.Microsecond) // spread the snapshots over the publishing
			}
			wg.Wait()
			for c := range clients {
				seen := map[string]int{}
				for _, f := range snaps[c].Frames {
					seen[f.RoutingKey] = version(f)
				}
				live, gap := drain(subs[c])
				if gap != nil {
					t.Fatalf("client %d: gap %+v", c, gap)
				}
				for _, f := range live {
					key, v := f.RoutingKey, version(f)
					if v != seen[key]+1 {
						t.Fatalf("client %d: %s version %d live after version %d (snapshot of %d keys)", c, key, v, seen[key], len(snaps[c].Frames))
					}
					seen[key] = v
				}
				for j := range jobs {
					if key := "team.42.job." + strconv.Itoa(j) + ".status"; seen[key] != rounds {
						t.Fatalf("client %d: %s ends at version %d, want %d", c, key, seen[key], rounds)
					}
				}
			}
		})
	}
}

// A subscriber whose buffer overflowed gets a gap; Resync then gives it a snapshot of the
// current state and keeps only what comes after it, so the state it rebuilds is exact.
func TestResyncAfterAnOverflowRecoversTheExactState(t *testing.T) {
	h, _ := newHub(hub.OffsetIDs, 8)
	s, _, snap := h.SubscribeSnapshot(hub.Filter{{"42"}, nil}, hub.Cursor{})
	if len(snap.Frames) != 0 || snap.ID != "" {
		t.Fatalf("snapshot of an empty hub = %d frames, id %q", len(snap.Frames), snap.ID)
	}
	offset := int64(0)
	for v := 1; v <= 10; v++ {
		for j := 0; j < 20; j++ {
			publishJob(h, offset, "42", strconv.Itoa(j), v)
			publishJob(h, offset+1, "43", strconv.Itoa(j), v)
			offset += 2
		}
	}
	frames, gap, _ := s.Take(nil)
	if gap == nil || gap.Reason != "overflow" {
		t.Fatalf("gap = %+v after overflowing an 8-event buffer", gap)
	}
	publishJob(h, offset, "42", "3", 11) // after the Take, before the Resync: in the snapshot
	offset++
	snap = h.Resync(s)
	publishJob(h, offset, "42", "4", 11) // after the Resync: live
	if snap.ID != strconv.FormatInt(offset-1, 10) {
		t.Errorf("snapshot id %q, want %d", snap.ID, offset-1)
	}
	state := map[string]int{}
	for i, f := range snap.Frames {
		if f.Values[0] != "42" {
			t.Fatalf("snapshot holds %s of another team", f.RoutingKey)
		}
		if i > 0 && snap.Frames[i-1].RoutingKey >= f.RoutingKey {
			t.Fatalf("snapshot not in routing-key order: %s before %s", snap.Frames[i-1].RoutingKey, f.RoutingKey)
		}
		state[f.RoutingKey] = version(f)
	}
	_ = frames // taken before the resync: all at or before the snapshot, the writer drops them
	live, gap := drain(s)
	if gap != nil {
		t.Errorf("gap %+v after the resync", gap)
	}
	if len(live) != 1 || live[0].RoutingKey != "team.42.job.4.status" || version(live[0]) != 11 {
		t.Fatalf("live after the resync: %d frames, want job 4's version 11 only", len(live))
	}
	state[live[0].RoutingKey] = version(live[0])
	for j := 0; j < 20; j++ {
		want := 10
		if j == 3 || j == 4 {
			want = 11
		}
		if key := "team.42.job." + strconv.Itoa(j) + ".status"; state[key] != want {
			t.Errorf("%s at version %d, want %d", key, state[key], want)
		}
	}
}

// A client resuming with an id the hub can place is resumed, not sent a snapshot; one with an
// id it cannot place gets the gap and the snapshot, without the replayed backlog.
func TestSnapshotOnlyWithoutAResumablePosition(t *testing.T) {
	h, _ := newHub(hub.EpochIDs, 64)
	for v := 1; v <= 3; v++ {
		publishJob(h, 0, "42", "1", v)
	}
	_, gap, snap := h.SubscribeSnapshot(hub.Filter{nil, nil}, hub.ParseCursor(hub.EpochIDs, "0000abcd-2"))
	if gap != nil || snap != nil {
		t.Errorf("resumable id: gap %+v, snapshot %v; want a resume", gap, snap)
	}
	s, gap, snap := h.SubscribeSnapshot(hub.Filter{nil, nil}, hub.ParseCursor(hub.EpochIDs, "ffffffff-2"))
	if gap == nil || snap == nil || len(snap.Frames) != 1 || version(snap.Frames[0]) != 3 || snap.ID != "0000abcd-3" {
		t.Fatalf("foreign epoch: gap %+v, snapshot %+v; want a gap and a snapshot of version 3 at 0000abcd-3", gap, snap)
	}
	if live, _ := drain(s); len(live) != 0 {
		t.Errorf("foreign epoch with a snapshot: %d replayed frames, want none (the snapshot has them)", len(live))
	}
}

// BenchmarkSnapshotOf10000Keys is what a client's snapshot costs the hub: the time its lock is
// held (SubscribeSnapshot collects the store under it; Publish waits meanwhile) for a
// 10,000-key snapshot among 20,000 keys of two tenants. The sort happens after the lock.
func BenchmarkSnapshotOf10000Keys(b *testing.B) {
	h, _ := newHub(hub.EpochIDs, 16)
	for j := 0; j < 10000; j++ {
		publishJob(h, 0, "42", strconv.Itoa(j), 1)
		publishJob(h, 0, "43", strconv.Itoa(j), 1)
	}
	filter := hub.Filter{{"42"}, nil}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, _, snap := h.SubscribeSnapshot(filter, hub.Cursor{})
		if len(snap.Frames) != 10000 {
			b.Fatalf("%d frames", len(snap.Frames))
		}
		h.Unsubscribe(s)
	}
}

// BenchmarkCollect10000Keys is the part of it done under the hub's lock.
func BenchmarkCollect10000Keys(b *testing.B) {
	_, store := newHub(hub.EpochIDs, 16)
	h := hub.New(hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, LastValues: store})
	for j := 0; j < 10000; j++ {
		publishJob(h, 0, "42", strconv.Itoa(j), 1)
		publishJob(h, 0, "43", strconv.Itoa(j), 1)
	}
	filter := hub.Filter{{"42"}, nil}
	dst := make([]*hub.Frame, 0, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = store.Collect(filter, dst[:0])
	}
}
