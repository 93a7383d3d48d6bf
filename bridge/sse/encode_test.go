package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"plain", Event{ID: "1", Data: []byte(`{"a":1}`)}, "id: 1\ndata: {\"a\":1}\n\n"},
		{"named", Event{Name: "gap", Data: []byte("x")}, "event: gap\ndata: x\n\n"},
		{"empty data", Event{}, "data: \n\n"},
		{"LF split", Event{Data: []byte("a\nb")}, "data: a\ndata: b\n\n"},
		{"CRLF split", Event{Data: []byte("a\r\nb")}, "data: a\ndata: b\n\n"},
		{"lone CR split", Event{Data: []byte("a\rb")}, "data: a\ndata: b\n\n"},
		{"trailing LF keeps empty line", Event{Data: []byte("a\n")}, "data: a\ndata: \n\n"},
		{"leading space kept", Event{Data: []byte(" a")}, "data:  a\n\n"},
		{"CR LF NUL stripped from id", Event{ID: "a\r\nb\x00c", Data: []byte("x")}, "id: abc\ndata: x\n\n"},
		{"CR LF stripped from name", Event{Name: "a\nb\r", Data: []byte("x")}, "event: ab\ndata: x\n\n"},
		{"invalid UTF-8 replaced", Event{Data: []byte("a\xffb")}, "data: a\uFFFDb\n\n"},
		{"UTF-8 kept", Event{ID: "é", Data: []byte("日本\n語")}, "id: é\ndata: 日本\ndata: 語\n\n"},
		{"NUL in data kept", Event{Data: []byte("a\x00b")}, "data: a\x00b\n\n"},
		{"mixed breaks", Event{Data: []byte("a\r\r\nb\n\rc\r")}, "data: a\ndata: \ndata: b\ndata: \ndata: c\ndata: \n\n"},
		{"invalid UTF-8 around breaks", Event{ID: "\xff", Name: "\xe6\x97", Data: []byte("\xe6\x97\n\xef\xbf\xbd\xc3")}, "id: \uFFFD\nevent: \uFFFD\uFFFD\ndata: \uFFFD\uFFFD\ndata: \uFFFD\uFFFD\n\n"},
		{"id of line breaks only", Event{ID: "\r\n", Data: []byte("x")}, "id: \ndata: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendEvent(nil, tt.ev)
			if string(got) != tt.want {
				t.Fatalf("AppendEvent = %q, want %q", got, tt.want)
			}
			if n := EncodedLen(tt.ev); n != len(got) {
				t.Fatalf("EncodedLen = %d, encoded %d bytes", n, len(got))
			}
		})
	}
}

func TestLongIDIsKeptWhole(t *testing.T) {
	id := strings.Repeat("9", 4096)
	msg := decodeOne(t, AppendEvent(nil, Event{ID: id, Data: []byte("x")}))
	if msg.LastEventID != id {
		t.Fatalf("long id changed: %d bytes", len(msg.LastEventID))
	}
}

func TestCommentAndRetry(t *testing.T) {
	if got := string(AppendComment(nil, "ok")); got != ": ok\n\n" {
		t.Errorf("AppendComment = %q", got)
	}
	if got := string(AppendComment(nil, "a\nb")); got != ": ab\n\n" {
		t.Errorf("AppendComment with LF = %q", got)
	}
	if got := string(AppendComment(nil, "")); got != ":\n\n" {
		t.Errorf("empty comment = %q", got)
	}
	if got := string(AppendRetry(nil, 3000)); got != "retry: 3000\n\n" {
		t.Errorf("AppendRetry = %q", got)
	}
	if got := string(AppendRetry(nil, -5)); got != "retry: 0\n\n" {
		t.Errorf("AppendRetry(-5) = %q", got)
	}
}

func TestDecoderFollowsTheStandard(t *testing.T) {
	stream := "\uFEFFdata: a\r\ndata:b\rid: 7\n\n" + // BOM, CRLF, CR, no space after colon
		": comment\n" +
		"id: x\x00y\ndata: c\n\n" + // id with NUL ignored: stays 7
		"retry: 12a\nretry: 250\nevent: gap\ndata:  two spaces\n\n" +
		"data: unterminated"
	d := NewDecoder(strings.NewReader(stream), 0)
	want := []Message{
		{LastEventID: "7", Name: "message", Data: "a\nb"},
		{LastEventID: "7", Name: "message", Data: "c"},
		{LastEventID: "7", Name: "gap", Data: " two spaces"},
	}
	for i, w := range want {
		got, err := d.Next()
		if err != nil || got != w {
			t.Fatalf("event %d = %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("unterminated event: err = %v, want io.EOF (discarded)", err)
	}
	if d.Retry() != 250 || d.Comments() != 1 {
		t.Fatalf("retry = %d comments = %d", d.Retry(), d.Comments())
	}
}

func decodeOne(t *testing.T, b []byte) Message {
	t.Helper()
	m, err := NewDecoder(bytes.NewReader(b), 1<<20).Next()
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

// FuzzEncodeDecode checks the encoder against the reference client: whatever the id, name and
// data, the client dispatches exactly one event carrying the data with line breaks normalised
// to LF and invalid UTF-8 replaced, and the sanitised id and name.
func FuzzEncodeDecode(f *testing.F) {
	f.Add("1", "", []byte(`{"a":1}`))
	f.Add("a\r\nb\x00", "gap\n", []byte("x\r\ny\rz\n"))
	f.Add("", "message", []byte(""))
	f.Add(strings.Repeat("7", 200), "ü", []byte("\xff\xfe\n\x00"))
	f.Add("id", ":", []byte(":not a comment\n\n\ndata: injected"))
	f.Fuzz(func(t *testing.T, id, name string, data []byte) {
		frame := AppendEvent(nil, Event{ID: id, Name: name, Data: data})
		if n := EncodedLen(Event{ID: id, Name: name, Data: data}); n != len(frame) {
			t.Fatalf("EncodedLen = %d, encoded %d bytes: %q", n, len(frame), frame)
		}
		if !utf8.Valid(frame) {
			t.Fatalf("frame is not UTF-8: %q", frame)
		}
		if !bytes.HasSuffix(frame, []byte("\n\n")) {
			t.Fatalf("frame does not end with a blank line: %q", frame)
		}
		d := NewDecoder(bytes.NewReader(frame), len(frame)+1)
		got, err := d.Next()
		if err != nil {
			t.Fatalf("decode %q: %v", frame, err)
		}
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("frame %q dispatched more than one event", frame)
		}
		wantData := strings.ReplaceAll(strings.ReplaceAll(replaceInvalid(string(data)), "\r\n", "\n"), "\r", "\n")
		if got.Data != wantData {
			t.Fatalf("data = %q, want %q", got.Data, wantData)
		}
		wantID := strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(replaceInvalid(id))
		if got.LastEventID != wantID && !(wantID == "" && got.LastEventID == "") {
			t.Fatalf("id = %q, want %q", got.LastEventID, wantID)
		}
		wantName := strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(replaceInvalid(name))
		if wantName == "" {
			wantName = "message"
		}
		if got.Name != wantName {
			t.Fatalf("name = %q, want %q", got.Name, wantName)
		}
	})
}

// replaceInvalid replaces every byte that is not part of valid UTF-8 with U+FFFD.
func replaceInvalid(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // ranging yields RuneError once per invalid byte
	}
	return b.String()
}
