package sse

import (
	"strings"
	"testing"
)

var benchData = []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"job.status","team_id":"42","job_id":"7","status":"running","progress":57,"message":"processing chunk 57 of 100","time":"2026-11-27T06:00:00.123456789Z"}`)

func BenchmarkAppendEvent(b *testing.B) {
	ev := Event{ID: "0a1b2c3d-123456", Data: benchData}
	buf := make([]byte, 0, EncodedLen(ev))
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], ev)
	}
}

func BenchmarkAppendEventMultiline(b *testing.B) {
	data := []byte(strings.Repeat(`{"line": "some text"}`+"\n", 10))
	ev := Event{ID: "123456", Data: data}
	buf := make([]byte, 0, EncodedLen(ev))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], ev)
	}
}
