package events

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DefaultRoutingKeyTemplate is the routing key publishers use unless an EventStream says
// otherwise; its placeholders are the bridge's query filters.
const DefaultRoutingKeyTemplate = "team.{team_id}.job.{job_id}.status"

// DefaultExchange is the topic exchange publishers send to unless an EventStream says
// otherwise.
const DefaultExchange = "events.topic"

// ContentType is the content type of every event message.
const ContentType = "application/json"

// TimestampMillisHeader carries the publish time in Unix milliseconds. The AMQP timestamp
// property has one-second resolution; the bridge prefers this header for its
// publish→delivery latency histogram (the name is the one RabbitMQ's message-timestamp
// plugin uses).
const TimestampMillisHeader = "timestamp_in_ms"

// Event is the JSON contract of a message on the events exchange (docs/events.md).
// The bridge forwards the message body unchanged as the SSE data, so fields added by a
// publisher reach the browser too; these are the ones every publisher must agree on.
type Event struct {
	// ID identifies the event for de-duplication by the application (e.g. a UUID). It is not
	// the SSE id: the bridge assigns that.
	ID string `json:"id"`
	// Type names what happened, e.g. "job.status".
	Type string `json:"type"`
	// TeamID is the tenant; it must equal the routing key's {team_id}.
	TeamID string `json:"team_id"`
	// JobID is the job the event is about; it must equal the routing key's {job_id}.
	JobID string `json:"job_id"`
	// Status is the job state, e.g. "queued", "running", "succeeded", "failed".
	Status string `json:"status"`
	// Progress is the completion in percent, 0..100.
	Progress int `json:"progress"`
	// Message is optional human-readable text.
	Message string `json:"message,omitempty"`
	// Time is when the event happened (RFC 3339 with nanoseconds, UTC).
	Time time.Time `json:"time"`
}

// Validate checks the fields every consumer relies on.
func (e Event) Validate() error {
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("id is empty"))
	}
	if e.Type == "" {
		errs = append(errs, errors.New("type is empty"))
	}
	if err := ValidSegmentValue(e.TeamID); err != nil {
		errs = append(errs, fmt.Errorf("team_id: %w", err))
	}
	if err := ValidSegmentValue(e.JobID); err != nil {
		errs = append(errs, fmt.Errorf("job_id: %w", err))
	}
	if e.Progress < 0 || e.Progress > 100 {
		errs = append(errs, fmt.Errorf("progress %d is outside 0..100", e.Progress))
	}
	if e.Time.IsZero() {
		errs = append(errs, errors.New("time is zero"))
	}
	return errors.Join(errs...)
}

// RoutingKey renders the event's routing key with t, taking each placeholder's value from the
// event field of the same JSON name (team_id, job_id, ...).
func (e Event) RoutingKey(t *Template) (string, error) {
	fields := map[string]string{"id": e.ID, "type": e.Type, "team_id": e.TeamID, "job_id": e.JobID, "status": e.Status}
	values := make(map[string]string, len(t.placeholders))
	for _, name := range t.placeholders {
		v, ok := fields[name]
		if !ok {
			return "", fmt.Errorf("routing-key template %q: placeholder {%s} is not an event field", t.raw, name)
		}
		values[name] = v
	}
	return t.Render(values)
}

// Marshal encodes the event as its JSON contract.
func (e Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// NewID returns a random 128-bit id in hex, for event and message ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
