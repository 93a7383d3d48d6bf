package server

import (
	"sync"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

// streamWakers lets the handler wake every open stream's writer, which waits on its
// subscriber's Notify alone (one channel, no select per delivery): Drain and EndStreams close
// their channel, then wake all, and each writer sees the closed channel.
type streamWakers struct {
	mu   sync.Mutex
	subs map[*hub.Subscriber]struct{}
}

// add registers s and wakes it once, so a channel closed before add is seen too; remove
// deregisters it.
func (w *streamWakers) add(s *hub.Subscriber) (remove func()) {
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[*hub.Subscriber]struct{}{}
	}
	w.subs[s] = struct{}{}
	w.mu.Unlock()
	s.Wake()
	return func() {
		w.mu.Lock()
		delete(w.subs, s)
		w.mu.Unlock()
	}
}

// wakeAll wakes every registered writer.
func (w *streamWakers) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range w.subs {
		s.Wake()
	}
}

// isClosed reports whether ch is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
