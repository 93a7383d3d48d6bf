package amqp

import (
	"bytes"
	"encoding/json"
)

// redeliveryFilter recognises the broker's redeliveries of events this process already handed
// to the hub (classic and quorum queues), so clients do not get them twice after a connection
// drop (broker restart, connection reset): a delivery handed off but whose ack the broker did
// not process before the connection dropped comes again, marked Redelivered, on the next
// connection.
//
// Which deliveries can come again: the consumer acks in delivery order (multiple=true; a
// malformed delivery's reject settles only itself), so an unacked one is followed only by
// unacked ones, and the broker never has more than the prefetch unacked: the redeliveries are
// among the last prefetch deliveries handed off. The filter keeps exactly those (acks sent are
// not trusted: their frames may be lost with the connection).
//
// Cost on the hot path: one ring slot write per handed-off delivery of up to
// keptBodyBytes (the body is referenced, not copied or parsed); a larger body's id is read at
// once, so that the ring never holds more than prefetch × keptBodyBytes of bodies. The other
// event ids (the payload's "id") are read only when a session ends, from the ring, and for
// deliveries marked Redelivered while ids are kept. After a drop: at most
// redeliveryLimit(prefetch) ids. Used by the consumer's goroutine only.
type redeliveryFilter struct {
	// recent is a ring of the last len(recent) deliveries handed off on the current
	// connection; next is the slot written next.
	recent []handedOff
	next   int
	// possible holds the ids of events handed off on an earlier connection that the broker
	// may deliver again; cleared by the first delivery not marked Redelivered (the broker
	// delivers returned messages before new ones, and the consumer is exclusive, so the old
	// connection's messages are back in the queue before the new one consumes).
	possible map[string]struct{}
	limit    int
}

// keptBodyBytes is the largest body the ring references; larger ones are reduced to their id.
const keptBodyBytes = 4 << 10

// handedOff is a delivery handed off: its body, or (body over keptBodyBytes) its id.
type handedOff struct {
	body []byte
	id   string
}

// redeliveryLimit bounds the ids kept after connection drops (the redeliveries of one drop
// are at most the prefetch).
func redeliveryLimit(prefetch int) int { return 2 * prefetch }

func newRedeliveryFilter(prefetch int) *redeliveryFilter {
	return &redeliveryFilter{recent: make([]handedOff, prefetch), limit: redeliveryLimit(prefetch)}
}

// handedOff records a delivery whose event the hub has (published now, or earlier and
// suppressed now).
func (f *redeliveryFilter) handedOff(body []byte) {
	if len(body) <= keptBodyBytes {
		f.recent[f.next] = handedOff{body: body}
	} else {
		id, _ := eventID(body)
		f.recent[f.next] = handedOff{id: id}
	}
	f.next = (f.next + 1) % len(f.recent)
}

// sessionEnded keeps the ids of the last deliveries handed off as possibly redelivered on the
// next connection.
func (f *redeliveryFilter) sessionEnded() {
	if len(f.possible)+len(f.recent) > f.limit {
		clear(f.possible) // from drops whose redeliveries never ended: keep the latest only
	}
	for i, h := range f.recent {
		id := h.id
		if h.body != nil {
			id, _ = eventID(h.body)
		}
		if id != "" {
			if f.possible == nil {
				f.possible = make(map[string]struct{})
			}
			f.possible[id] = struct{}{}
		}
		f.recent[i] = handedOff{}
	}
	f.next = 0
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
