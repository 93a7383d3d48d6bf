package chaos

import (
	"context"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// origin is the zero of the suite's clock. Every measured moment (a publish, a delivery, a
// fault, a readiness change) is taken with now(), on the monotonic clock, so durations between
// them are exact whatever the wall clock does.
var origin = time.Now()

// instant is a moment on the suite's clock: the time since origin.
type instant = time.Duration

func now() instant { return time.Since(origin) }

// waitFor polls cond every 50 ms until it holds (true) or timeout passes (false).
func waitFor(timeout time.Duration, cond func() bool) bool {
	return poll.Within(context.Background(), timeout, 50*time.Millisecond, cond)
}

// seconds formats d rounded to a tenth of a second, e.g. "2.4s".
func seconds(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
