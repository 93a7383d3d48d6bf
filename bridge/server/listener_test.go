package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// failingListener fails every Accept with err until closed.
type failingListener struct {
	net.Listener
	err error
}

func (l failingListener) Accept() (net.Conn, error) { return nil, l.err }

// TestAcceptErrorsLoggedAtWarnRateLimited: out of descriptors, every Accept fails; the
// failures are logged at warn, one line per second with the count suppressed in between.
// A closed listener (shutdown) is not logged.
func TestAcceptErrorsLoggedAtWarnRateLimited(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	clock := time.Unix(1000, 0)
	l := LogAcceptErrors(failingListener{Listener: real, err: syscall.EMFILE}, "sse", log).(*loggingListener)
	l.now = func() time.Time { return clock }

	for range 5 { // within one second: one line
		if _, err := l.Accept(); !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("Accept error %v, want EMFILE unchanged", err)
		}
		clock = clock.Add(100 * time.Millisecond)
	}
	clock = clock.Add(time.Second)
	_, _ = l.Accept()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"level=WARN", "listener=sse", "too many open files", "suppressedSinceLast=0"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first line lacks %q: %s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], "suppressedSinceLast=4") {
		t.Errorf("second line does not count the 4 suppressed failures: %s", lines[1])
	}

	out.Reset()
	closed := LogAcceptErrors(failingListener{Listener: real, err: net.ErrClosed}, "sse", log)
	_, _ = closed.Accept()
	if out.Len() != 0 {
		t.Errorf("closed listener logged: %s", out.String())
	}
}
