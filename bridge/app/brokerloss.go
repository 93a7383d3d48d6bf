package app

import (
	"context"
	"time"
)

// brokerWatchInterval is how often a stream bridge checks that its consumer is connected.
const brokerWatchInterval = 100 * time.Millisecond

// endStreamsWhenCutOff runs in stream mode until ctx ends. /readyz turns 503 as soon as the
// consumer loses the broker; once it has been away for grace (long enough that a connection
// reset, which reconnects within a second, does not count), the streams open at that moment
// are ended with a short retry: hint, once per outage: their clients reconnect through the
// Service to a replica that still has the broker and resume exactly with Last-Event-ID.
// Streams opened during the outage are kept with heartbeats (every replica may be cut off, and
// then the events come after it). Without this, clients of a replica cut off from the broker
// would wait, silent, for the whole outage.
func (b *Bridge) endStreamsWhenCutOff(ctx context.Context, grace, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var lostAt time.Time
	ended := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			if b.Consumer.Consuming() {
				lostAt, ended = time.Time{}, false
				continue
			}
			if lostAt.IsZero() {
				lostAt = now
			}
			if !ended && now.Sub(lostAt) >= grace {
				ended = true
				b.log.Warn("broker unreachable; ending open streams so clients move to a healthy replica",
					"since", lostAt.UTC().Format(time.RFC3339Nano), "clients", b.Hub.Len())
				b.Handler.EndStreams("broker unreachable")
			}
		}
	}
}
