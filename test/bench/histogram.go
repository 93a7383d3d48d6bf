package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations with about 1% precision (log-linear buckets of 128 sub-buckets
// per power of two, in microseconds) using atomic counters, so thousands of reader goroutines
// can record into it without a lock. It is sharded to keep cache-line contention low.
type Histogram struct {
	shards [histShards]histShard
}

const (
	histShards   = 16
	histSubBits  = 7
	histSub      = 1 << histSubBits
	histMaxPower = 40 // up to 2^40 µs, far beyond any run
	histBuckets  = (histMaxPower - histSubBits + 1) * histSub
)

type histShard struct {
	counts [histBuckets]atomic.Uint64
}

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	power := bits.Len64(us) - 1 // us in [2^power, 2^(power+1))
	if power >= histMaxPower {
		return histBuckets - 1
	}
	shift := power - histSubBits
	return (shift+1)*histSub + int((us>>shift)-histSub)
}

// histValue is the lower bound of bucket i in microseconds.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	return (uint64(i%histSub) + histSub) << shift
}

// Record adds d to shard (any int; callers pass something stable per goroutine).
func (h *Histogram) Record(shard int, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < 0 {
		us = 0
	}
	h.shards[uint(shard)%histShards].counts[histIndex(uint64(us))].Add(1)
}

// Reset zeroes the histogram; call it while nothing records.
func (h *Histogram) Reset() {
	for s := range h.shards {
		for i := range h.shards[s].counts {
			h.shards[s].counts[i].Store(0)
		}
	}
}

// Summary is a snapshot of a Histogram.
type Summary struct {
	Count               uint64
	P50, P99, P999, Max time.Duration
}

// Summarize computes the count, percentiles (bucket lower bounds) and maximum.
func (h *Histogram) Summarize() Summary {
	merged := make([]uint64, histBuckets)
	var total uint64
	for s := range h.shards {
		for i := range merged {
			c := h.shards[s].counts[i].Load()
			merged[i] += c
			total += c
		}
	}
	sum := Summary{Count: total}
	if total == 0 {
		return sum
	}
	at := func(q float64) time.Duration {
		rank := uint64(q * float64(total))
		if rank >= total {
			rank = total - 1
		}
		var seen uint64
		for i, c := range merged {
			seen += c
			if seen > rank {
				return time.Duration(histValue(i)) * time.Microsecond
			}
		}
		return 0
	}
	sum.P50, sum.P99, sum.P999 = at(0.50), at(0.99), at(0.999)
	for i := len(merged) - 1; i >= 0; i-- {
		if merged[i] > 0 {
			sum.Max = time.Duration(histValue(i+1)) * time.Microsecond
			break
		}
	}
	return sum
}
