package hub

import (
	"strconv"
	"testing"
)

var benchData = []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"job.status","team_id":"42","job_id":"7","status":"running","progress":57,"message":"processing chunk 57 of 100","time":"2026-11-27T06:00:00.123456789Z"}`)

// benchmarkPublish publishes events for team 0 to a hub holding `total` subscribers spread over
// `teams` teams (so total/teams match each event) and reports the cost per delivered event.
// Matching buffers are drained outside the timer so the overflow path is not measured.
func benchmarkPublish(b *testing.B, total, teams int) {
	h := New(Config{Placeholders: 2, Epoch: "0000abcd", BufferSize: 256, ReplaySize: 1000})
	var matching []*Subscriber
	for i := 0; i < total; i++ {
		team := strconv.Itoa(i % teams)
		s, _ := h.Subscribe(Filter{{team}, nil}, Cursor{})
		if team == "0" {
			matching = append(matching, s)
		}
	}
	values := []string{"0", "7"}
	var dst []*Frame
	delivered := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, n := h.Publish(Message{RoutingKey: "team.0.job.7.status", Values: values, Data: benchData})
		delivered += n
		if i%200 == 199 {
			b.StopTimer()
			for _, s := range matching {
				dst, _, _ = s.Take(dst)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(delivered, 1)), "ns/delivered")
	b.ReportMetric(float64(len(matching)), "matching")
}

func BenchmarkPublish1of1(b *testing.B)       { benchmarkPublish(b, 1, 1) }
func BenchmarkPublish100of100(b *testing.B)   { benchmarkPublish(b, 100, 1) }
func BenchmarkPublish1000of1000(b *testing.B) { benchmarkPublish(b, 1000, 1) }
func BenchmarkPublish10of10000(b *testing.B)  { benchmarkPublish(b, 10000, 1000) }
func BenchmarkPublish1of10000(b *testing.B)   { benchmarkPublish(b, 10000, 10000) }
func BenchmarkPublish100of10000(b *testing.B) { benchmarkPublish(b, 10000, 100) }

// BenchmarkPublishAndTake is one event through the hub to a writer that keeps up: publish,
// then the subscriber's Take, as the SSE writer does per wake-up.
func BenchmarkPublishAndTake(b *testing.B) {
	h := New(Config{Placeholders: 2, Epoch: "0000abcd", BufferSize: 256, ReplaySize: 1000})
	s, _ := h.Subscribe(Filter{{"0"}, nil}, Cursor{})
	dst := make([]*Frame, 0, 256)
	values := []string{"0", "7"}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(Message{RoutingKey: "team.0.job.7.status", Values: values, Data: benchData})
		dst, _, _ = s.Take(dst)
	}
}

// BenchmarkPublishAndTakeLarge is BenchmarkPublishAndTake with 64 KiB events: the cost of
// encoding and allocating a large frame (and collecting the ones the ring lets go).
func BenchmarkPublishAndTakeLarge(b *testing.B) {
	h := New(Config{Placeholders: 2, Epoch: "0000abcd", BufferSize: 256, ReplaySize: 1000})
	s, _ := h.Subscribe(Filter{{"0"}, nil}, Cursor{})
	data := jsonEvent(64 << 10)
	dst := make([]*Frame, 0, 256)
	values := []string{"0", "7"}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(Message{RoutingKey: "team.0.job.7.status", Values: values, Data: data})
		dst, _, _ = s.Take(dst)
	}
}
