package server

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// acceptLogInterval is the least time between two logged accept errors of one listener.
const acceptLogInterval = time.Second

// LogAcceptErrors wraps l so that failed accepts are logged at warn, at most one line per
// second with the number of failures suppressed since the previous line. Accept errors mean
// the process cannot take new connections (most often: out of file descriptors), which a
// liveness probe would soon notice; net/http itself only retries, logging to its ErrorLog.
// A closed listener (shutdown) is not logged. Errors are returned unchanged, so net/http's retry with backoff still applies.
func LogAcceptErrors(l net.Listener, name string, log *slog.Logger) net.Listener {
	return &loggingListener{Listener: l, name: name, log: log, now: time.Now}
}

type loggingListener struct {
	net.Listener
	name string
	log  *slog.Logger
	now  func() time.Time

	mu         sync.Mutex
	lastLogged time.Time
	suppressed int
}

func (l *loggingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		l.logFailure(err)
	}
	return conn, err
}

func (l *loggingListener) logFailure(err error) {
	l.mu.Lock()
	now := l.now()
	if now.Sub(l.lastLogged) < acceptLogInterval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.lastLogged, l.suppressed = now, 0
	l.mu.Unlock()
	l.log.Warn("accept failed: new connections are not taken", "listener", l.name,
		"address", l.Addr().String(), "error", err, "suppressedSinceLast", suppressed)
}
