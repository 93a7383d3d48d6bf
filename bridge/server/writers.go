package server

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
)

// writerPool runs the detached streams of a handler from at most GOMAXPROCS writer
// goroutines instead of a goroutine per stream: a subscriber's signal puts its stream on a
// ready queue (once, however many events arrive before it runs), a writer takes it, runs one
// step (the heartbeat, a Take, the frames) and writes the result with non-blocking writev
// calls. A stream whose socket is full is not waited for by the writer: a goroutine of its own
// writes the rest, up to the write timeout, and gives the stream back (the Go runtime's poller
// wakes it when the socket is writable). An idle stream therefore holds no goroutine, and a
// delivery costs no goroutine wake-up of its own.
//
// Writers start when there is work and end when the pool holds no stream, so a handler that
// serves nothing holds no goroutine.
type writerPool struct {
	max int
	// waiting counts streams whose socket was full, while their pending write waits.
	waiting atomic.Int64

	mu      sync.Mutex
	cond    sync.Cond // signalled when ready gains a stream or live reaches 0
	ready   []*stream // FIFO from head; each stream at most once (stream.sched)
	head    int
	idle    int // writers waiting on cond
	workers int // writers running
	live    int // streams in the pool, from add until they end
}

// A stream's scheduling state in the pool (stream.sched).
const (
	schedIdle      int32 = iota // waiting for a signal
	schedQueued                 // on the ready queue
	schedRunning                // a writer, or the stream's pending write, runs it
	schedSignalled              // running, and signalled since: queued again afterwards
	schedDone                   // ended: signals are ignored
)

// popBatch is how many streams a writer takes from the queue at once.
const popBatch = 64

// scratchKeep bounds the scratch a writer keeps between steps (buffers and frames).
const scratchKeep = 4096

// writers returns the handler's pool, made at the first detached stream.
func (h *Handler) writers() *writerPool {
	h.poolOnce.Do(func() {
		h.pool = &writerPool{max: runtime.GOMAXPROCS(0)}
		h.pool.cond.L = &h.pool.mu
	})
	return h.pool
}

// add takes over an opened stream: from now on the subscriber's signals schedule it, and it
// runs once now for what arrived since its opening.
func (p *writerPool) add(x *stream) {
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	// The pool's writes never wait, so they need no deadline; one left from the opening would
	// make them fail once passed. Blocking writes (pending, last words) arm their own.
	cs := x.sink.(*connSink)
	cs.deadline = time.Time{}
	_ = cs.conn.SetWriteDeadline(cs.deadline)
	x.sched.Store(schedQueued)
	x.s.OnSignal(x.signal)
	p.push(x)
}

// signal schedules x: it is queued when idle, marked to run again when running; a queued or
// ended stream needs nothing. It never blocks (hub.Subscriber.OnSignal).
func (x *stream) signal() {
	for {
		switch x.sched.Load() {
		case schedIdle:
			if x.sched.CompareAndSwap(schedIdle, schedQueued) {
				x.h.pool.push(x)
				return
			}
		case schedRunning:
			if x.sched.CompareAndSwap(schedRunning, schedSignalled) {
				return
			}
		default:
			return
		}
	}
}

// yield ends a run of x: it becomes idle, or goes back on the queue when signalled meanwhile.
func (x *stream) yield() {
	if x.sched.CompareAndSwap(schedRunning, schedIdle) {
		return
	}
	x.sched.Store(schedQueued) // schedSignalled: only the runner changes it
	x.h.pool.push(x)
}

// end ends x, which a writer or its pending write runs: signals are ignored from now on, the
// last words (if any) are written and everything released.
func (x *stream) end(why endReason) {
	x.sched.Store(schedDone)
	if why == endGone {
		x.close() // nothing to write: no waiting
		x.h.pool.remove()
		return
	}
	go func() { // the last words may wait for the client, up to the write timeout
		x.finish(why)
		x.close()
		x.h.pool.remove()
	}()
}

func (p *writerPool) push(x *stream) {
	p.mu.Lock()
	p.ready = append(p.ready, x)
	if p.idle > 0 {
		p.cond.Signal()
	} else if p.workers < p.max {
		p.workers++
		go p.work()
	}
	p.mu.Unlock()
}

func (p *writerPool) remove() {
	p.mu.Lock()
	p.live--
	if p.live == 0 {
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

// pop moves up to popBatch queued streams into dst, waiting while the queue is empty; nil
// tells the writer to end (no stream left in the pool).
func (p *writerPool) pop(dst []*stream) []*stream {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == len(p.ready) {
		if p.live == 0 {
			p.workers--
			return nil
		}
		p.idle++
		p.cond.Wait()
		p.idle--
	}
	n := min(len(p.ready)-p.head, popBatch)
	dst = append(dst, p.ready[p.head:p.head+n]...)
	clear(p.ready[p.head : p.head+n])
	p.head += n
	switch {
	case p.head == len(p.ready):
		p.ready, p.head = p.ready[:0], 0
	case p.head >= 1024 && 2*p.head >= len(p.ready):
		// Under steady load the queue may never run empty: move the live part down so the
		// array does not grow with what was already taken.
		n := copy(p.ready, p.ready[p.head:])
		clear(p.ready[n:])
		p.ready, p.head = p.ready[:n], 0
	}
	return dst
}

// work is one writer: it runs queued streams until the pool holds none.
func (p *writerPool) work() {
	w := &poolWriter{vw: newVectorWriter()}
	var batch []*stream
	for {
		if batch = p.pop(batch[:0]); batch == nil {
			return
		}
		for _, x := range batch {
			w.run(x)
		}
		clear(batch)
	}
}

// poolWriter is a writer's scratch space, reused for every step it runs.
type poolWriter struct {
	vw     *vectorWriter
	queue  [][]byte
	frames []*hub.Frame
}

// run runs one step of x and writes what it produced without waiting.
func (w *poolWriter) run(x *stream) {
	x.sched.Store(schedRunning) // from queued: nothing else changes a queued stream's state
	cs := x.sink.(*connSink)
	cs.queue = &w.queue
	why, frames := x.step(w.frames)
	cs.queue = nil
	w.frames = trim(frames)
	queued := w.queue
	w.queue = nil
	more, ok := false, true
	switch {
	case len(queued) == 0 || why == endGone:
	case why == goOn:
		more, ok = cs.writeNow(w.vw, queued)
	default:
		// The last words follow with blocking writes, which write pending first.
		cs.pending = append(cs.pending, queued...)
	}
	clear(queued)
	w.queue = trim(queued)
	switch {
	case why != goOn:
		x.end(why)
	case !ok:
		x.end(endGone)
	case more:
		x.h.pool.waiting.Add(1)
		go x.writePending()
	default:
		x.yield()
	}
}

// writePending writes what the socket did not take, waiting up to the write timeout, and gives
// x back to the pool (or ends it: the client is too slow or gone). x stays running meanwhile.
func (x *stream) writePending() {
	cs := x.sink.(*connSink)
	ok := cs.writePending()
	x.h.pool.waiting.Add(-1)
	cs.deadline = time.Time{} // the pool's writes must not fail on it
	_ = cs.conn.SetWriteDeadline(cs.deadline)
	if !ok {
		x.end(endGone)
		return
	}
	x.yield()
}

// trim empties s for reuse as scratch, dropping its array when it grew beyond scratchKeep.
func trim[T any](s []T) []T {
	if cap(s) > scratchKeep {
		return nil
	}
	return s[:0]
}
