package server

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

// Query parameters the handler knows besides the template's placeholders.
const (
	// LastEventIDParam carries the resume position on the first request, which cannot carry
	// custom headers; the Last-Event-ID header wins when both are present.
	LastEventIDParam = "lastEventId"
	// AccessTokenParam is read by the authenticator; it is never logged.
	AccessTokenParam = "access_token"
	// SnapshotParam asks for the current state first: snapshot=1 (or true); 0 or false: no.
	SnapshotParam = "snapshot"
)

// Subscription is a parsed stream request.
type Subscription struct {
	// Filter has one entry per template placeholder: the accepted values, or nil for any.
	Filter hub.Filter
	// LastEventID is the resume position from the query (the header is read separately).
	LastEventID string
	// Snapshot asks for the newest event of every key first, and again after every gap.
	Snapshot bool
}

// ParseQuery reads the filters of a stream request. Only placeholders of tmpl, lastEventId,
// snapshot and access_token are allowed; a placeholder may repeat (any of the values matches), with at
// most maxFilterValues values over all placeholders. Values must fill one routing-key segment.
// Errors are written for the client: short, with the offending name quoted (truncated).
func ParseQuery(rawQuery string, tmpl *events.Template, maxFilterValues int) (Subscription, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Subscription{}, fmt.Errorf("malformed query string")
	}
	placeholders := tmpl.Placeholders()
	sub := Subscription{Filter: make(hub.Filter, len(placeholders))}
	total := 0
	// Sorted for deterministic errors.
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		vals := values[name]
		switch name {
		case AccessTokenParam:
			if len(vals) != 1 {
				return Subscription{}, fmt.Errorf("query parameter %s given %d times; give it once", AccessTokenParam, len(vals))
			}
			continue
		case LastEventIDParam:
			if len(vals) != 1 {
				return Subscription{}, fmt.Errorf("query parameter %s given %d times; give it once", LastEventIDParam, len(vals))
			}
			sub.LastEventID = vals[0]
			continue
		case SnapshotParam:
			if len(vals) != 1 {
				return Subscription{}, fmt.Errorf("query parameter %s given %d times; give it once", SnapshotParam, len(vals))
			}
			switch vals[0] {
			case "1", "true":
				sub.Snapshot = true
			case "0", "false":
			default:
				return Subscription{}, fmt.Errorf("query parameter %s: want 1 or 0", SnapshotParam)
			}
			continue
		}
		idx := slices.Index(placeholders, name)
		if idx < 0 {
			return Subscription{}, fmt.Errorf("unknown query parameter %q; allowed: %s, %s, %s, %s",
				clip(name, 64), strings.Join(placeholders, ", "), LastEventIDParam, SnapshotParam, AccessTokenParam)
		}
		total += len(vals)
		if total > maxFilterValues {
			return Subscription{}, fmt.Errorf("too many filter values: at most %d in total", maxFilterValues)
		}
		accepted := make([]string, 0, len(vals))
		for _, v := range vals {
			if err := events.ValidSegmentValue(v); err != nil {
				return Subscription{}, fmt.Errorf("query parameter %s: value must be non-empty, at most %d bytes, without '.', '*' or '#'", name, events.MaxRoutingKeyBytes)
			}
			if !slices.Contains(accepted, v) {
				accepted = append(accepted, v)
			}
		}
		sub.Filter[idx] = accepted
	}
	return sub, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
