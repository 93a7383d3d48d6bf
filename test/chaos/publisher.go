package chaos

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
)

// Published is one publish attempt: event Seq for Tenant and Job, started at Start, answered at
// End. Confirmed is true only when publish.Publisher.Publish returned nil: the broker took
// responsibility for the event. Any error (nack, returned as unroutable, connection lost,
// timeout) leaves it false: the event was not published, so no client is owed it, and if it
// arrives anyway it is counted apart.
type Published struct {
	Seq          int64
	Tenant, Job  int
	Start, End   instant
	Confirmed    bool
	ErrorMessage string
}

// Publisher publishes events through api/events' Publisher, one at a time and in order, each
// carrying its sequence number in the event id ("<run>-<seq>"). Event seq goes to tenant
// seq % tenants and job (seq / tenants) % jobs, so clients know which events they are owed and
// lastValue has several routing keys per tenant to supersede. It survives broker outages: after
// an error it closes its connection and dials again every 50 ms; events are numbered only when
// a publish is attempted.
type Publisher struct {
	url, exchange string
	run           string
	tenants, jobs int
	template      *events.Template

	mu      sync.Mutex
	records []Published
	pub     *publish.Publisher
}

// NewPublisher publishes to exchange on the broker at url; run prefixes the event ids.
func NewPublisher(url, exchange, run string, tenants, jobs int) *Publisher {
	return &Publisher{url: url, exchange: exchange, run: run, tenants: tenants, jobs: jobs,
		template: events.MustParseTemplate(events.DefaultRoutingKeyTemplate)}
}

// TenantOf is the tenant of event seq.
func (p *Publisher) TenantOf(seq int64) int { return int(seq % int64(p.tenants)) }

// JobOf is the job (and so the routing key within the tenant) of event seq.
func (p *Publisher) JobOf(seq int64) int { return int(seq / int64(p.tenants) % int64(p.jobs)) }

// Run publishes at rate events per second until ctx ends. It paces by the clock; after an
// outage it catches up at most one second of missed events (a burst), not the whole outage.
func (p *Publisher) Run(ctx context.Context, rate float64) {
	defer p.closeConn()
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for seq := int64(0); ctx.Err() == nil; {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait): // pacing
			}
		}
		if behind := time.Since(next); behind > time.Second {
			next = time.Now().Add(-time.Second)
		}
		pub := p.connect(ctx)
		if pub == nil {
			return
		}
		p.publish(pub, seq)
		seq++
		next = next.Add(interval)
	}
}

// connect returns the current publisher, dialling until it succeeds or ctx ends (nil).
func (p *Publisher) connect(ctx context.Context) *publish.Publisher {
	for {
		p.mu.Lock()
		pub := p.pub
		p.mu.Unlock()
		if pub != nil {
			return pub
		}
		pub, err := publish.Dial(p.url, nil, publish.PublisherConfig{Exchange: p.exchange})
		if err == nil {
			p.mu.Lock()
			p.pub = pub
			p.mu.Unlock()
			return pub
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond): // redial interval while the broker is away
		}
	}
}

func (p *Publisher) publish(pub *publish.Publisher, seq int64) {
	tenant, job := p.TenantOf(seq), p.JobOf(seq)
	ev := events.Event{
		ID: p.run + "-" + strconv.FormatInt(seq, 10), Type: "job.status",
		TeamID: bench.Tenant(tenant), JobID: strconv.Itoa(job),
		Status: "running", Progress: int(seq % 101), Message: "chaos", Time: time.Now().UTC(),
	}
	rec := Published{Seq: seq, Tenant: tenant, Job: job, Start: now()}
	// Not derived from ctx: stopping the publisher lets the last publish finish, so it is not
	// counted unconfirmed for a reason of the suite's own.
	callCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := pub.PublishEvent(callCtx, p.template, ev, publish.PublishOptions{})
	cancel()
	rec.End = now()
	rec.Confirmed = err == nil
	if err != nil {
		rec.ErrorMessage = err.Error()
		p.closeConn() // whatever failed, the next event goes out on a fresh connection
	}
	p.mu.Lock()
	p.records = append(p.records, rec)
	p.mu.Unlock()
}

func (p *Publisher) closeConn() {
	p.mu.Lock()
	pub := p.pub
	p.pub = nil
	p.mu.Unlock()
	if pub != nil {
		_ = pub.Close()
	}
}

// Records returns a copy of every publish attempt so far, in sequence order.
func (p *Publisher) Records() []Published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Published(nil), p.records...)
}

// Count returns how many publishes were attempted and how many were confirmed.
func (p *Publisher) Count() (attempted, confirmed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.records {
		if r.Confirmed {
			confirmed++
		}
	}
	return len(p.records), confirmed
}
