package publish

import (
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// PublishIDHeader carries a Publisher's own id of one publish attempt, unique on its channel,
// so that a message the broker returns is matched with the publish it belongs to. The message
// id cannot do that: an application may publish the same event twice. Consumers ignore it.
const PublishIDHeader = "x-eventstream-publish-id"

// returnTracker receives the basic.return notifications of one channel and keeps them by
// publish id until the publish's waiter takes them.
//
// It relies on an ordering guarantee: RabbitMQ sends the basic.return of a mandatory message
// before the basic.ack of its delivery tag, and amqp091-go's connection reader hands the
// return to the NotifyReturn channel before it processes that ack. So once a publish's confirm
// has arrived, a barrier through the tracker (which first records everything already handed
// over) tells for certain whether that publish was returned.
type returnTracker struct {
	returns  chan amqp.Return
	barriers chan chan struct{}
	done     chan struct{} // closed after the channel closed and every return was recorded

	mu       sync.Mutex
	returned map[string]returnedMessage // by publish id; emptied by take
	count    atomic.Uint64
}

// returnedMessage is a basic.return (body dropped) and when the tracker received it.
type returnedMessage struct {
	amqp.Return
	at time.Time
}

// returnBuffer lets the connection reader hand over returns without waiting for the tracker.
const returnBuffer = 128

// newReturnTracker subscribes to ch's returns; its goroutine ends when ch closes.
func newReturnTracker(ch *amqp.Channel) *returnTracker {
	t := &returnTracker{
		returns:  ch.NotifyReturn(make(chan amqp.Return, returnBuffer)),
		barriers: make(chan chan struct{}),
		done:     make(chan struct{}),
		returned: map[string]returnedMessage{},
	}
	go t.run()
	return t
}

func (t *returnTracker) run() {
	defer close(t.done)
	for {
		select {
		case r, ok := <-t.returns:
			if !ok {
				return
			}
			t.record(r)
		case barrier := <-t.barriers:
			open := t.drain()
			close(barrier)
			if !open {
				return
			}
		}
	}
}

// drain records every return already handed over; false when the channel has closed.
func (t *returnTracker) drain() bool {
	for {
		select {
		case r, ok := <-t.returns:
			if !ok {
				return false
			}
			t.record(r)
		default:
			return true
		}
	}
}

func (t *returnTracker) record(r amqp.Return) {
	t.count.Add(1)
	id, _ := r.Headers[PublishIDHeader].(string)
	if id == "" {
		return // not published through a Confirmation: nobody waits for it
	}
	r.Body = nil
	t.mu.Lock()
	t.returned[id] = returnedMessage{Return: r, at: time.Now()}
	t.mu.Unlock()
}

// take reports whether the publish with id was returned, and forgets it. It is exact only
// after the publish's confirm (ack or nack) has arrived.
func (t *returnTracker) take(id string) (returnedMessage, bool) {
	barrier := make(chan struct{})
	select {
	case t.barriers <- barrier:
		<-barrier
	case <-t.done:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.returned[id]
	delete(t.returned, id)
	return r, ok
}
