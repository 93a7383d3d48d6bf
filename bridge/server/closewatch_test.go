package server

import (
	"net"
	"testing"
	"time"
)

// Both close watchers report a client hanging up, once, and closeConn closes the connection.
func TestCloseWatchersNoticeHangUp(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	for name, w := range map[string]closeWatcher{"platform": newCloseWatcher(stop), "goroutine": goroutineWatcher{}} {
		t.Run(name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			client, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			gone := make(chan struct{}, 2)
			closeConn := w.watch(server, func() { gone <- struct{}{} })
			select {
			case <-gone:
				t.Fatal("reported gone while the client is connected")
			case <-time.After(50 * time.Millisecond):
			}
			client.Close()
			select {
			case <-gone:
			case <-time.After(5 * time.Second):
				t.Fatal("hang-up not noticed within 5s")
			}
			closeConn()
			if _, err := server.Write([]byte("x")); err == nil {
				t.Error("connection still open after closeConn")
			}
			if len(gone) != 0 {
				t.Error("onGone called twice")
			}
		})
	}
}
