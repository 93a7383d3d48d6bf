package clitest

import (
	"bytes"
	"sync"
)

// Output collects a running process's stdout or stderr while the test reads it: a
// bytes.Buffer safe for the process's writes and the test's reads at once.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
