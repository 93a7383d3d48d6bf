package hub

import (
	"bytes"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

// These tests measure the live heap after a full collection, not a count the hub keeps: the
// documented bounds are about the memory the bridge really holds.

// liveHeap returns the bytes of heap objects still reachable after a full collection.
func liveHeap() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}

// allocated is what Go's allocator hands out for n bytes: n rounded up to its size class
// (whole 8 KiB pages above 32 KiB).
func allocated(n int) int { return cap(slices.Grow([]byte(nil), n)) }

// jsonEvent returns a JSON body of n bytes, without line breaks.
func jsonEvent(n int) []byte {
	b := []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"job.status","payload":"`)
	b = append(b, bytes.Repeat([]byte("x"), n-len(b)-len(`"}`))...)
	return append(b, `"}`...)
}

// The replay ring's default byte bound (64 MiB, the bridge's default with --replay-size 1000)
// holds for the live heap when large events fill it: what the ring keeps is what it counts.
func TestReplayRingHeapStaysWithinItsByteBound(t *testing.T) {
	const bound = 64 << 20
	data := jsonEvent(64 << 10)
	values := []string{"1", "7"}
	before := liveHeap()
	h, _ := newTestHub(t, Config{ReplaySize: 1000})
	for i := 0; i < 1500; i++ {
		h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: values, Data: data})
	}
	held := liveHeap() - before
	runtime.KeepAlive(h)
	t.Logf("ring of %d frames of %d-byte events: live heap %.1f MiB (bound 64 MiB)",
		h.ringLen, len(data), float64(held)/(1<<20))
	if held > bound*11/10 {
		t.Errorf("replay ring holds %.1f MiB of live heap, bound 64 MiB (+10%%)", float64(held)/(1<<20))
	}
	if held < bound*8/10 {
		t.Errorf("replay ring holds only %.1f MiB: the test did not fill it", float64(held)/(1<<20))
	}
}

// Small events: the ring's per-frame bookkeeping (the frame, its id) counts towards the byte
// bound too, so a large --replay-size cannot hold more than the bound.
func TestReplayRingHeapWithSmallEventsStaysWithinItsByteBound(t *testing.T) {
	const bound = 4 << 20
	data := jsonEvent(200)
	values := []string{"1", "7"}
	h, _ := newTestHub(t, Config{ReplaySize: 1 << 20, ReplayMaxBytes: bound})
	before := liveHeap() // after New: the ring's slots (8 bytes per --replay-size) are fixed
	for i := 0; i < 100_000; i++ {
		h.Publish(Message{RoutingKey: "team.1.job.7.status", Values: values, Data: data})
	}
	held := liveHeap() - before
	runtime.KeepAlive(h)
	t.Logf("ring of %d frames of %d-byte events: live heap %.2f MiB (bound 4 MiB)",
		h.ringLen, len(data), float64(held)/(1<<20))
	if held > bound*11/10 {
		t.Errorf("replay ring holds %.2f MiB of live heap, bound 4 MiB (+10%%)", float64(held)/(1<<20))
	}
	if held < bound*6/10 {
		t.Errorf("replay ring holds only %.2f MiB: the test did not fill it", float64(held)/(1<<20))
	}
}

// A subscriber that never reads holds at most --buffer-size frames, each at its encoded size
// (as allocated), whatever the overflow policy does with the events beyond that.
func TestFullSubscriberBufferHeapIsItsFramesOnly(t *testing.T) {
	const bufferSize = 256
	for _, policy := range []OverflowPolicy{DropOldest, LastValue, Disconnect} {
		t.Run(policy.String(), func(t *testing.T) {
			data := jsonEvent(64 << 10)
			keys := make([]string, bufferSize/2) // lastValue supersedes the older event of a key
			for i := range keys {
				keys[i] = strconv.Itoa(i)
			}
			before := liveHeap()
			h, _ := newTestHub(t, Config{BufferSize: bufferSize, Overflow: policy}) // no ring
			s, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
			frameLen := 0
			for i := 0; i < 2*bufferSize; i++ {
				job := keys[i%len(keys)]
				f, _ := h.Publish(Message{RoutingKey: "team.1.job." + job + ".status", Values: []string{"1", job}, Data: data})
				frameLen = len(f.Bytes)
			}
			held := liveHeap() - before
			runtime.KeepAlive(h)
			runtime.KeepAlive(s)
			want := bufferSize * allocated(frameLen)
			if policy == Disconnect {
				want = 0 // the subscription ended and released its frames
			}
			t.Logf("%s: live heap %.1f MiB, %d frames of %d bytes take %.1f MiB",
				policy, float64(held)/(1<<20), bufferSize, frameLen, float64(want)/(1<<20))
			if held > want*11/10+(1<<20) {
				t.Errorf("subscriber buffer holds %.1f MiB of live heap, want at most %.1f MiB (+10%%)",
					float64(held)/(1<<20), float64(want)/(1<<20))
			}
		})
	}
}
