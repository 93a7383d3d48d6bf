// Package sse encodes the text/event-stream wire format (WHATWG HTML, server-sent events).
//
// Every Append function returns a complete, self-contained block: an event always ends with a
// blank line (the client dispatches only there), field values never contain CR, LF or NUL,
// and data is valid UTF-8. Appending to a caller-owned buffer lets the hub encode an event once
// and share the bytes with every subscriber.
package sse

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Event is one server-sent event.
type Event struct {
	// ID becomes the client's last event id. CR, LF and NUL are removed (a client ignores an
	// id containing NUL); empty: no id field, so the client keeps its previous id.
	ID string
	// Name is the event type for addEventListener; empty means "message". CR, LF and NUL
	// are removed.
	Name string
	// Data is split at CRLF, CR and LF into one data: line each; the client joins them with
	// LF. Each byte that is not valid UTF-8 becomes U+FFFD. Empty data still dispatches an event with
	// an empty string.
	Data []byte
}

// AppendEvent appends the encoding of ev to dst.
func AppendEvent(dst []byte, ev Event) []byte {
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = appendField(dst, ev.ID, true)
		dst = append(dst, '\n')
	}
	if ev.Name != "" {
		dst = append(dst, "event: "...)
		dst = appendField(dst, ev.Name, true)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, ev.Data)
	return append(dst, '\n')
}

// EncodedLen returns len(AppendEvent(nil, ev)) exactly, so a caller can give an event a buffer
// of its own that holds nothing beyond its encoding. It reads the data a few times at memchr
// speed (line breaks, UTF-8 validity); invalid data is decoded once more.
func EncodedLen(ev Event) int {
	n := 0
	if ev.ID != "" {
		n += len("id: \n") + fieldLen(ev.ID, true)
	}
	if ev.Name != "" {
		n += len("event: \n") + fieldLen(ev.Name, true)
	}
	return n + dataLen(ev.Data) + len("\n")
}

// dataLen returns len(appendData(nil, data)).
func dataLen(data []byte) int {
	// Each line break becomes "\ndata: " in place of its own bytes: LF and a lone CR are one
	// byte, CRLF two.
	n := len("data: ") + len(data) + len("\n")
	n += bytes.Count(data, lineFeed) * (len("\ndata: ") - 1)
	if crs := bytes.Count(data, carriageReturn); crs > 0 {
		n += crs*(len("\ndata: ")-1) - bytes.Count(data, crlf)*len("\ndata: ")
	}
	if utf8.Valid(data) {
		return n
	}
	for i := 0; i < len(data); {
		if data[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			n += utf8.RuneLen(utf8.RuneError) - 1
		}
		i += size
	}
	return n
}

var (
	lineFeed       = []byte{'\n'}
	carriageReturn = []byte{'\r'}
	crlf           = []byte{'\r', '\n'}
)

// fieldLen returns len(appendField(nil, s, dropNUL)).
func fieldLen(s string, dropNUL bool) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\r' && c != '\n' && !(dropNUL && c == 0) {
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += utf8.RuneLen(utf8.RuneError)
		} else {
			n += size
		}
		i += size
	}
	return n
}

// AppendComment appends a comment line (":" text), used for the opening flush and heartbeats.
// Clients ignore comments; they keep proxies and load balancers from timing the stream out.
// CR and LF in text end the comment there.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ':')
	if text != "" {
		dst = append(dst, ' ')
		dst = appendField(dst, text, false)
	}
	return append(dst, '\n', '\n')
}

// AppendRetry appends a retry field (the client's reconnection delay in milliseconds).
// Negative values are clamped to 0.
func AppendRetry(dst []byte, millis int64) []byte {
	if millis < 0 {
		millis = 0
	}
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, millis, 10)
	return append(dst, '\n', '\n')
}

// appendField appends s without CR and LF (and without NUL when dropNUL), as valid UTF-8.
func appendField(dst []byte, s string, dropNUL bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\r' && c != '\n' && !(dropNUL && c == 0) {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendData appends one "data: " line per line of data (CRLF, CR and LF all end a line).
func appendData(dst []byte, data []byte) []byte {
	valid := utf8.Valid(data)
	dst = append(dst, "data: "...)
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			dst = append(dst, "\ndata: "...)
			i++
		case c == '\n':
			dst = append(dst, "\ndata: "...)
			i++
		case valid || c < utf8.RuneSelf:
			// Copy the run up to the next line break in one go.
			j := i + 1
			for j < len(data) && data[j] != '\n' && data[j] != '\r' && (valid || data[j] < utf8.RuneSelf) {
				j++
			}
			dst = append(dst, data[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, data[i:i+size]...)
			}
			i += size
		}
	}
	return append(dst, '\n')
}
