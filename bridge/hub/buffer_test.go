package hub

import (
	"fmt"
	"slices"
	"testing"
)

// A subscriber's buffer starts empty and grows on demand up to BufferSize, keeping the order
// and the overflow policy at the bound.
func TestSubscriberBufferGrowsOnDemandToItsBound(t *testing.T) {
	h, _ := newTestHub(t, Config{BufferSize: 10, Overflow: DropOldest})
	s, _ := h.Subscribe(Filter{nil, nil}, Cursor{})
	if len(s.buf) != 0 {
		t.Fatalf("idle subscriber holds a buffer of %d", len(s.buf))
	}
	var want []string
	for i := 1; i <= 12; i++ {
		publish(h, "1", "7", fmt.Sprint(i))
		want = append(want, fmt.Sprintf("0000abcd-%d", i))
	}
	if len(s.buf) != 10 {
		t.Errorf("buffer grew to %d, want the bound 10", len(s.buf))
	}
	ids, gap := take(t, s)
	if !slices.Equal(ids, want[2:]) || gap == nil || gap.Dropped != 2 {
		t.Errorf("took %v gap %+v, want %v and 2 dropped", ids, gap, want[2:])
	}
	publish(h, "1", "7", "13")
	if ids, gap := take(t, s); !slices.Equal(ids, []string{"0000abcd-13"}) || gap != nil {
		t.Errorf("after growth took %v gap %+v", ids, gap)
	}
}
