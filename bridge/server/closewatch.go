package server

import "net"

// closeWatcher tells a detached stream that its client hung up.
type closeWatcher interface {
	// watch calls onGone once when conn's client hangs up (or the connection fails). The
	// returned closeConn stops watching, closes conn and returns when the watcher is done with
	// it; the stream calls it instead of conn.Close.
	watch(conn net.Conn, onGone func()) (closeConn func())
}

// goroutineWatcher reads each connection in a goroutine of its own (portable fallback).
type goroutineWatcher struct{}

func (goroutineWatcher) watch(conn net.Conn, onGone func()) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer onGone()
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	return func() {
		_ = conn.Close()
		<-done
	}
}
