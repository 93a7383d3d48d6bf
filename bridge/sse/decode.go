package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrLineTooLong is returned by Decoder.Next when a line exceeds the decoder's limit.
var ErrLineTooLong = errors.New("sse: line too long")

// Message is an event as a client dispatches it.
type Message struct {
	// LastEventID is the client's last event id after this event (ids carry over).
	LastEventID string
	// Name is the event type; "message" when the stream named none.
	Name string
	// Data is the data lines joined with LF.
	Data string
}

// Decoder parses a text/event-stream the way a browser does (the WHATWG "interpret an event
// stream" algorithm): a leading BOM is skipped, lines end at CRLF, CR or LF, one space after
// the colon is removed, ids containing NUL are ignored, retry is honoured only when all
// digits, and an event without its closing blank line is never dispatched.
// It is used by eventctl tail and by the tests as the reference client.
type Decoder struct {
	r           *bufio.Reader
	maxLine     int
	started     bool
	lastEventID string
	pendingCR   bool
	// retry and comments may be read while another goroutine runs Next (tests watch
	// heartbeats that never dispatch an event).
	retry    atomic.Int64
	comments atomic.Int64
}

// NewDecoder reads from r; lines longer than maxLine bytes fail with ErrLineTooLong
// (0: 1 MiB).
func NewDecoder(r io.Reader, maxLine int) *Decoder {
	if maxLine <= 0 {
		maxLine = 1 << 20
	}
	d := &Decoder{r: bufio.NewReader(r), maxLine: maxLine}
	d.retry.Store(-1)
	return d
}

// LastEventID is the client's current last event id.
func (d *Decoder) LastEventID() string { return d.lastEventID }

// Retry is the last valid retry value in milliseconds, or -1 when none was received. It is
// safe to call while another goroutine runs Next.
func (d *Decoder) Retry() int64 { return d.retry.Load() }

// Comments counts the comment lines seen (heartbeats). It is safe to call while another
// goroutine runs Next.
func (d *Decoder) Comments() int { return int(d.comments.Load()) }

// Next returns the next dispatched event. At the end of the stream it returns io.EOF; a
// trailing event without its blank line is discarded, as a browser does.
func (d *Decoder) Next() (Message, error) {
	var (
		data    strings.Builder
		hasData bool
		name    string
	)
	for {
		line, err := d.readLine()
		if err != nil {
			return Message{}, err
		}
		if line == "" {
			if !hasData {
				name = ""
				continue
			}
			if name == "" {
				name = "message"
			}
			return Message{LastEventID: d.lastEventID, Name: name, Data: data.String()}, nil
		}
		if line[0] == ':' {
			d.comments.Add(1)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			name = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				d.lastEventID = value
			}
		case "retry":
			if ms, ok := allDigits(value); ok {
				d.retry.Store(ms)
			}
		}
	}
}

func allDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// readLine returns the next line without its terminator (CRLF, CR or LF).
func (d *Decoder) readLine() (string, error) {
	var line []byte
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				// A line without terminator at EOF is incomplete: discard, as clients do.
				return "", io.EOF
			}
			return "", err
		}
		if d.pendingCR {
			d.pendingCR = false
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\n':
			return d.finishLine(line), nil
		case '\r':
			d.pendingCR = true
			return d.finishLine(line), nil
		}
		if len(line) >= d.maxLine {
			return "", ErrLineTooLong
		}
		line = append(line, c)
	}
}

func (d *Decoder) finishLine(line []byte) string {
	if !d.started {
		d.started = true
		line = bytes.TrimPrefix(line, []byte("\uFEFF"))
	}
	return string(line)
}
