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

// BenchmarkEncodeFrame64KiB sizes and encodes a 64 KiB event into a buffer of its own, as the
// hub does once per event.
func BenchmarkEncodeFrame64KiB(b *testing.B) {
	data := []byte(`{"payload":"` + strings.Repeat("x", 64<<10-len(`{"payload":""}`)) + `"}`)
	ev := Event{ID: "0a1b2c3d-123456", Data: data}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_ = AppendEvent(make([]byte, 0, EncodedLen(ev)), ev)
	}
}

// BenchmarkEncodedLen is the sizing pass the hub runs before encoding each event.
func BenchmarkEncodedLen(b *testing.B) {
	ev := Event{ID: "0a1b2c3d-123456", Data: benchData}
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodedLen(ev)
	}
}
