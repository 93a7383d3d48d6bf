package amqp

import (
	"bytes"
	"encoding/json"
)

// redeliveryFilter recognises the broker's redeliveries of events this process already handed
// to the hub (classic and quorum queues), so clients do not get them twice after a connection
// drop (broker restart, connection reset): a delivery handed off but not yet acked when the
// connection dropped comes again, marked Redelivered, on the next connection.
//
// Cost on the hot path: one slice append per handed-off delivery (the body is referenced, not
// copied or parsed). The event ids (the payload's "id") are read only when a session ends, from
// the bodies not known to be acked (at most the prefetch), and for deliveries marked
// Redelivered while that set is not empty. Memory: at most the prefetch's bodies while
// connected (the current ack batch and the previous one, whose ack may have been lost with the
// connection), and at most redeliveryLimit(prefetch) ids after a drop. Used by the consumer's
// goroutine only.
type redeliveryFilter struct {
	// current holds the bodies handed off since the last ack; previous the last acked batch's
	// (its ack frame may not have reached the broker before the connection dropped).
	current, previous [][]byte
	// possible holds the ids of events handed off on an earlier connection that the broker
	// may deliver again; cleared by the first delivery not marked Redelivered (the broker
	// delivers returned messages before new ones, and the consumer is exclusive, so the old
	// connection's messages are back in the queue before the new one consumes).
	possible map[string]struct{}
	limit    int
}

// redeliveryLimit bounds the ids kept after connection drops: the unacked deliveries of one
// connection are at most the prefetch.
func redeliveryLimit(prefetch int) int { return 2 * prefetch }

func newRedeliveryFilter(prefetch int) *redeliveryFilter {
	return &redeliveryFilter{limit: redeliveryLimit(prefetch)}
}

// handedOff records a delivery whose event the hub has (published now, or earlier and
// suppressed now): it is not acked yet.
func (f *redeliveryFilter) handedOff(body []byte) { f.current = append(f.current, body) }

// acked is called after the ack of everything handed off so far was sent.
func (f *redeliveryFilter) acked() {
	clear(f.previous)
	f.previous, f.current = f.current, f.previous[:0]
}

// sessionEnded keeps the ids of the deliveries that may not have been acked as possibly
// redelivered on the next connection.
func (f *redeliveryFilter) sessionEnded() {
	if len(f.possible)+len(f.current)+len(f.previous) > f.limit {
		clear(f.possible) // from drops whose redeliveries never ended: keep the latest only
	}
	for _, batch := range [][][]byte{f.previous, f.current} {
		for _, body := range batch {
			if id, ok := eventID(body); ok {
				if f.possible == nil {
					f.possible = make(map[string]struct{}, len(f.current)+len(f.previous))
				}
				f.possible[id] = struct{}{}
			}
		}
		clear(batch)
	}
	f.previous, f.current = f.previous[:0], f.current[:0]
}

// duplicate reports whether a delivery is a redelivery of an event this process handed off on
// an earlier connection. Events without an id are never duplicates.
func (f *redeliveryFilter) duplicate(redelivered bool, body []byte) bool {
	if len(f.possible) == 0 {
		return false
	}
	if !redelivered {
		f.possible = nil // the redeliveries are over
		return false
	}
	id, ok := eventID(body)
	if !ok {
		return false
	}
	_, seen := f.possible[id]
	return seen
}

// eventID is the top-level "id" string of a JSON object body (the event contract's id; exact
// key, case-sensitive), ok false when there is none or it is empty.
func eventID(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		if key, _ := t.(string); key == "id" {
			var id string
			if err := dec.Decode(&id); err != nil || id == "" {
				return "", false
			}
			return id, true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}
