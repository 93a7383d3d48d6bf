package chaos

import (
	"math"
	"sort"
	"time"
)

// Counts are what clients were owed and what they got, summed over clients. An event is owed
// to a client when the publisher got its confirm and it matches the client's tenant.
type Counts struct {
	Clients int
	// Expected is the number of (client, owed event) pairs; Delivered of those that arrived.
	Expected, Delivered int
	// LostSilent arrived neither themselves nor announced: no gap event stood between the
	// client's last older event and its first newer one. The suite fails on any.
	LostSilent int
	// LostSignalled are missing events covered by a gap event (the application refetches).
	LostSignalled int
	// Superseded are missing events of a lastValue stream for which a newer event of the same
	// routing key arrived: the policy's documented contract, not a loss.
	Superseded int
	// Duplicated counts repeated arrivals; Reordered first arrivals after a newer event.
	Duplicated, Reordered int
	// Gaps counts gap events; GapsWithoutLoss those that covered no missing event.
	Gaps, GapsWithoutLoss int
	// UnconfirmedArrived counts arrivals of events whose publish was not confirmed.
	UnconfirmedArrived int
	// OwedMissed counts missing events that the down-window target says must arrive.
	OwedMissed int
	// Resumes counts streams opened after a client's first one.
	Resumes int
}

// Lost is every missing owed event that was not superseded.
func (c Counts) Lost() int { return c.LostSilent + c.LostSignalled }

func (c *Counts) add(o Counts) {
	c.Clients += o.Clients
	c.Expected += o.Expected
	c.Delivered += o.Delivered
	c.LostSilent += o.LostSilent
	c.LostSignalled += o.LostSignalled
	c.Superseded += o.Superseded
	c.Duplicated += o.Duplicated
	c.Reordered += o.Reordered
	c.Gaps += o.Gaps
	c.GapsWithoutLoss += o.GapsWithoutLoss
	c.UnconfirmedArrived += o.UnconfirmedArrived
	c.OwedMissed += o.OwedMissed
	c.Resumes += o.Resumes
}

// DownWindow is the classic/quorum target after a bridge fault: every event published from
// From on, up to the client's reconnection, must reach the client if the new bridge process's
// replay ring still holds it, i.e. if fewer than Ring events were published after it before the
// client reconnected.
type DownWindow struct {
	From instant
	Ring int
}

// clientRun is one client's record, as tallyClient reads it.
type clientRun struct {
	tenant    int
	receipts  []Receipt
	conns     []Connection
	lastValue bool
	owed      *DownWindow
}

// tallyClient classifies every event owed to one client. records[i] must be event i.
//
// A missing event k is signalled when the arrival right before the client's first event newer
// than k is a gap (the gap then covers k): that is what a bridge does when it drops events
// (dropOldest: the gap precedes the remaining ones), cannot place a Last-Event-ID (the gap
// opens the new stream) or finds the id expired. When no newer event arrived, a gap after the
// last arrival covers it.
func tallyClient(records []Published, run clientRun, jobOf func(int64) int) Counts {
	n := len(records)
	out := Counts{Clients: 1}
	firstIdx := make([]int32, n)
	for i := range firstIdx {
		firstIdx[i] = -1
	}
	maxSeen := int64(-1)
	lastMessage := -1
	maxByJob := map[int]int64{}
	for i, r := range run.receipts {
		if r.IsGap() {
			out.Gaps++
			continue
		}
		lastMessage = i
		if r.Seq >= int64(n) {
			continue // not in the records: cannot happen once publishing stopped
		}
		if firstIdx[r.Seq] >= 0 {
			out.Duplicated++
			continue
		}
		firstIdx[r.Seq] = int32(i)
		if r.Seq < maxSeen {
			out.Reordered++
		}
		maxSeen = max(maxSeen, r.Seq)
		if !records[r.Seq].Confirmed {
			out.UnconfirmedArrived++
		}
		if newest, ok := maxByJob[jobOf(r.Seq)]; !ok || r.Seq > newest {
			maxByJob[jobOf(r.Seq)] = r.Seq
		}
	}
	// firstAbove[k] is the earliest arrival index of an event newer than k.
	firstAbove := make([]int32, n)
	running := int32(math.MaxInt32)
	for s := n - 1; s >= 0; s-- {
		firstAbove[s] = running
		if firstIdx[s] >= 0 && firstIdx[s] < running {
			running = firstIdx[s]
		}
	}
	trailingGap := -1
	for i := len(run.receipts) - 1; i > lastMessage; i-- {
		if run.receipts[i].IsGap() {
			trailingGap = i
		}
	}
	owedFrom, owedAbove := owedRange(records, run)
	covering := map[int]bool{}
	for k := 0; k < n; k++ {
		rec := records[k]
		if !rec.Confirmed || rec.Tenant != run.tenant {
			continue
		}
		out.Expected++
		if firstIdx[k] >= 0 {
			out.Delivered++
			continue
		}
		if owedFrom >= 0 && rec.Start >= owedFrom && int64(k) > owedAbove {
			out.OwedMissed++
		}
		if newest, ok := maxByJob[jobOf(int64(k))]; run.lastValue && ok && newest > int64(k) {
			out.Superseded++
			continue
		}
		gap := -1
		if a := firstAbove[k]; a != math.MaxInt32 {
			if a > 0 && run.receipts[a-1].IsGap() {
				gap = int(a - 1)
			}
		} else {
			gap = trailingGap
		}
		if gap >= 0 {
			out.LostSignalled++
			covering[gap] = true
		} else {
			out.LostSilent++
		}
	}
	out.GapsWithoutLoss = out.Gaps - len(covering)
	opened := 0
	for _, c := range run.conns {
		if c.Open > 0 {
			opened++
		}
	}
	out.Resumes = max(0, opened-1)
	return out
}

// owedRange returns, for a client with a down window, the fault instant and the sequence number
// above which missed events must arrive (-1, max when there is no window). The new process's
// ring holds the last Ring events published before the client reconnected.
func owedRange(records []Published, run clientRun) (instant, int64) {
	if run.owed == nil {
		return -1, math.MaxInt64
	}
	reconnect := instant(math.MaxInt64)
	for _, c := range run.conns {
		if c.Open > 0 && c.Open >= run.owed.From {
			reconnect = c.Open
			break
		}
	}
	lastBefore := int64(len(records) - 1)
	i := sort.Search(len(records), func(i int) bool { return records[i].Start >= reconnect })
	if i < len(records) {
		lastBefore = int64(i) - 1
	}
	return run.owed.From, lastBefore - int64(run.owed.Ring)
}

// firstArrivalFrom returns when the first event with a sequence number of at least seq arrived.
func firstArrivalFrom(receipts []Receipt, seq int64) (instant, bool) {
	for _, r := range receipts {
		if r.Seq >= seq {
			return r.At, true
		}
	}
	return 0, false
}

// maxSilence returns the longest stretch within [from, to] without an arriving event.
func maxSilence(receipts []Receipt, from, to instant) time.Duration {
	last := from
	var worst time.Duration
	for _, r := range receipts {
		if r.IsGap() || r.At <= from {
			continue
		}
		if r.At > to {
			break
		}
		worst = max(worst, r.At-last)
		last = r.At
	}
	return max(worst, to-last)
}
