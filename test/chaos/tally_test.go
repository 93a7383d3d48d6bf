package chaos

import (
	"testing"
	"time"
)

// publishedRun returns n confirmed events over tenants, event k started at k·10 ms.
func publishedRun(n, tenants int) []Published {
	records := make([]Published, n)
	for k := range records {
		records[k] = Published{Seq: int64(k), Tenant: k % tenants, Start: time.Duration(k) * 10 * time.Millisecond, Confirmed: true}
	}
	return records
}

// arrivals builds receipts from a compact script: a non-negative number is that event, -1 a gap.
func arrivals(script ...int64) []Receipt {
	out := make([]Receipt, len(script))
	for i, s := range script {
		out[i] = Receipt{At: time.Duration(i) * time.Second, Seq: s}
	}
	return out
}

func TestTallyClassifiesMissingEvents(t *testing.T) {
	jobOf := func(seq int64) int { return int(seq % 2) }
	tests := []struct {
		name      string
		receipts  []Receipt
		lastValue bool
		want      Counts
	}{
		{"all in order", arrivals(0, 1, 2, 3, 4, 5), false,
			Counts{Clients: 1, Expected: 6, Delivered: 6}},
		{"a hole without a gap is silent", arrivals(0, 1, 3, 4, 5), false,
			Counts{Clients: 1, Expected: 6, Delivered: 5, LostSilent: 1}},
		{"a gap right before the next newer event covers the hole", arrivals(0, 1, -1, 4, 5), false,
			Counts{Clients: 1, Expected: 6, Delivered: 4, LostSignalled: 2, Gaps: 1}},
		{"a gap earlier than the last older event does not", arrivals(0, -1, 1, 3, 4, 5), false,
			Counts{Clients: 1, Expected: 6, Delivered: 5, LostSilent: 1, Gaps: 1, GapsWithoutLoss: 1}},
		{"lost tail after a final gap is signalled", arrivals(0, 1, 2, -1), false,
			Counts{Clients: 1, Expected: 6, Delivered: 3, LostSignalled: 3, Gaps: 1}},
		{"lost tail without a gap is silent", arrivals(0, 1, 2), false,
			Counts{Clients: 1, Expected: 6, Delivered: 3, LostSilent: 3}},
		{"duplicates and reordering are counted, not lost", arrivals(0, 2, 1, 2, 3, 4, 5, 5), false,
			Counts{Clients: 1, Expected: 6, Delivered: 6, Duplicated: 2, Reordered: 1}},
		{"lastValue: a newer event of the same key supersedes", arrivals(0, 1, 3, 4, 5), true,
			Counts{Clients: 1, Expected: 6, Delivered: 5, Superseded: 1}},
		{"lastValue: the newest of a key cannot be superseded", arrivals(0, 1, 2, 3, 5), true,
			Counts{Clients: 1, Expected: 6, Delivered: 5, LostSilent: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tallyClient(publishedRun(6, 1), clientRun{receipts: tt.receipts, lastValue: tt.lastValue}, jobOf)
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestTallyOwesOnlyConfirmedEventsOfTheClientsTenant(t *testing.T) {
	records := publishedRun(6, 2) // tenant 0: 0, 2, 4
	records[4].Confirmed = false
	records[5].Confirmed = false
	got := tallyClient(records, clientRun{tenant: 0, receipts: arrivals(0, 2, 4)}, func(int64) int { return 0 })
	want := Counts{Clients: 1, Expected: 2, Delivered: 2, UnconfirmedArrived: 1}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// A client reconnects after a bridge fault at 20 ms: what it missed from the fault on is owed
// while the ring (2 events here) still held it when it came back at 55 ms.
func TestTallyDownWindow(t *testing.T) {
	records := publishedRun(10, 1)
	conns := []Connection{{Open: 1}, {Open: 55 * time.Millisecond}}
	run := clientRun{receipts: arrivals(0, 1, -1, 7, 8, 9), conns: conns, owed: &DownWindow{From: 20 * time.Millisecond, Ring: 2}}
	got := tallyClient(records, run, func(int64) int { return 0 })
	// Missing 2..6, all after the fault; published before the reconnect: 0..5, so the ring held
	// 4 and 5: those two are owed (and missed). 6 was published after the reconnect: owed too.
	if got.OwedMissed != 3 || got.LostSignalled != 5 || got.Resumes != 1 {
		t.Errorf("got %+v, want OwedMissed 3, LostSignalled 5, Resumes 1", got)
	}
}

func TestMaxSilence(t *testing.T) {
	r := arrivals(0, 1, -1, -1, -1, 2, 3) // events at 0, 1, 5, 6 s; gaps do not end a silence
	if got := maxSilence(r, 500*time.Millisecond, 7*time.Second); got != 4*time.Second {
		t.Errorf("silence within [0.5 s, 7 s] = %v, want 4s", got)
	}
	if got := maxSilence(r, 6500*time.Millisecond, 10*time.Second); got != 3500*time.Millisecond {
		t.Errorf("silence up to the window's end = %v, want 3.5s", got)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"bridge drain (SIGTERM)": "bridge-drain-sigterm",
		"stream ×2":              "stream-2",
		"dropOldest":             "dropoldest",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
