package hub

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
)

// IDScheme says how event ids are formed and read back from Last-Event-ID.
type IDScheme int

const (
	// EpochIDs (classic and quorum queues): "<epoch>-<seq>". The epoch is random per bridge
	// process, so an id from another process is recognisably foreign; seq counts from 1.
	EpochIDs IDScheme = iota
	// OffsetIDs (stream queues): the stream offset in decimal, the same on every replica.
	OffsetIDs
)

// MaxCursorBytes bounds a Last-Event-ID the hub will read; longer ids are unknown.
// Browsers send cross-origin Last-Event-ID values over 128 bytes only after a preflight.
const MaxCursorBytes = 128

// NewEpoch returns a random epoch: 8 lowercase hex digits.
func NewEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Cursor is a parsed Last-Event-ID.
type Cursor struct {
	// Present is false when the client sent no id: it starts live, without a gap.
	Present bool
	// Valid is false when an id was sent but is not one of ours in form: a gap.
	Valid bool
	// Epoch is the id's epoch (EpochIDs only).
	Epoch string
	// Pos is the seq (EpochIDs) or the offset (OffsetIDs).
	Pos int64
}

// ParseCursor reads a Last-Event-ID. It never fails: an empty id is "not present", and an id
// of the wrong form, too long, or out of range is present but not valid.
func ParseCursor(scheme IDScheme, id string) Cursor {
	if id == "" {
		return Cursor{}
	}
	c := Cursor{Present: true}
	if len(id) > MaxCursorBytes {
		return c
	}
	digits, epoch := id, ""
	if scheme == EpochIDs {
		var ok bool
		epoch, digits, ok = strings.Cut(id, "-")
		if !ok || !isEpoch(epoch) {
			return c
		}
	}
	if digits == "" || len(digits) > 19 {
		return c
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return c
		}
	}
	if len(digits) > 1 && digits[0] == '0' {
		return c // we never write leading zeros; such an id is not one of ours
	}
	pos, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return c
	}
	c.Epoch, c.Pos, c.Valid = epoch, pos, true
	return c
}

func isEpoch(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// formatID returns the SSE id for position pos.
func formatID(scheme IDScheme, epoch string, pos int64) string {
	if scheme == OffsetIDs {
		return strconv.FormatInt(pos, 10)
	}
	b := make([]byte, 0, len(epoch)+1+20)
	b = append(b, epoch...)
	b = append(b, '-')
	b = strconv.AppendInt(b, pos, 10)
	return string(b)
}
