package controllers

import (
	"slices"
	"strings"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// topologyPlan is what applyTopology does to make the broker hold a stream's topology: one
// declaration of everything missing, and the stale bindings to remove.
type topologyPlan struct {
	want    topology
	declare broker.Declarations
	unbind  []broker.Binding
	// previousPolicy is the stream's policy as it was, when the declaration updates it.
	previousPolicy *broker.Policy
	// claims is set when the declaration makes the stream's policy claim a queue it did not
	// claim before (it creates the policy or changes its pattern).
	claims bool
	// figures are the queue's figures as listed; zero for a queue about to be declared.
	figures *esv1.QueueStatus
}

// planTopology compares the stream's topology with the listed one. An exchange of another
// type is a stalled BrokerError and a queue whose arguments conflict a stalled
// QueueArgumentsConflict (nothing is declared then); existing exchanges and queues are
// otherwise left as they are.
func planTopology(want topology, observed observedTopology) (topologyPlan, error) {
	p := topologyPlan{want: want}
	for _, x := range []struct{ name, kind string }{{want.Exchange, "topic"}, {want.DeadLetterExchange, "fanout"}} {
		if x.name == "" {
			continue
		}
		have, ok := observed.exchanges[x.name]
		switch {
		case !ok:
			p.declare.Exchanges = append(p.declare.Exchanges, broker.Exchange{Name: x.name, Type: x.kind, Durable: true})
		case have.Type != x.kind:
			return p, newStepError(stalled, esv1.ReasonBrokerError, nil,
				"exchange %s exists with type %s, declared %s; delete it or choose another name", x.name, have.Type, x.kind)
		}
	}

	queue, queueExists := observed.queues[want.Queue]
	if queueExists {
		if conflicts := queueConflicts(&queue, want); len(conflicts) > 0 {
			return p, newStepError(stalled, esv1.ReasonQueueArgumentsConflict, nil,
				"queue %s exists with arguments that differ from the declared ones: %s; delete the queue or choose another name",
				want.Queue, strings.Join(conflicts, "; "))
		}
		p.figures = queueStatus(&queue)
	} else {
		p.figures = &esv1.QueueStatus{Name: want.Queue}
	}
	if want.DeadLetterQueue != "" {
		if dlq, ok := observed.queues[want.DeadLetterQueue]; ok {
			p.figures.DeadLettered = dlq.Messages
		} else {
			p.declare.Queues = append(p.declare.Queues, broker.Queue{Name: want.DeadLetterQueue, Type: string(esv1.QueueTypeClassic), Durable: true})
		}
		p.planBindings(observed.bindings[want.DeadLetterQueue],
			[]broker.Binding{{Source: want.DeadLetterExchange, Queue: want.DeadLetterQueue, RoutingKey: ""}})
	}
	if !queueExists {
		p.declare.Queues = append(p.declare.Queues, broker.Queue{Name: want.Queue, Type: want.QueueType, Durable: true})
	}

	i := slices.IndexFunc(observed.policies, func(have broker.Policy) bool { return have.Name == want.Policy.Name })
	switch {
	case i < 0:
		p.declare.Policies = append(p.declare.Policies, want.Policy)
		p.claims = true
	case !samePolicy(observed.policies[i], want.Policy):
		have := observed.policies[i]
		p.previousPolicy = &have
		p.declare.Policies = append(p.declare.Policies, want.Policy)
		p.claims = have.Pattern != want.Policy.Pattern || have.ApplyTo != want.Policy.ApplyTo
	}
	p.planBindings(observed.bindings[want.Queue], want.Bindings)
	return p, nil
}

// planBindings adds to the plan what makes a queue's bindings equal want.
func (p *topologyPlan) planBindings(observed, want []broker.Binding) {
	add, remove := bindingChanges(observed, want)
	p.declare.Bindings = append(p.declare.Bindings, add...)
	p.unbind = append(p.unbind, remove...)
}

func samePolicy(have, want broker.Policy) bool {
	return have.Pattern == want.Pattern && have.ApplyTo == want.ApplyTo &&
		have.Priority == want.Priority && sameDefinition(have.Definition, want.Definition)
}

// describe names what the declaration holds, for errors.
func (p *topologyPlan) describe() string {
	var parts []string
	for _, x := range p.declare.Exchanges {
		parts = append(parts, "exchange "+x.Name)
	}
	for _, q := range p.declare.Queues {
		parts = append(parts, "queue "+q.Name)
	}
	for _, pol := range p.declare.Policies {
		parts = append(parts, "policy "+pol.Name)
	}
	if len(p.declare.Bindings) > 0 {
		parts = append(parts, "bindings "+describeBindings(p.declare.Bindings))
	}
	return strings.Join(parts, ", ")
}

// record adds to changes, for Events, what d declared and unbind removed of the plan.
func (p *topologyPlan) record(changes *topologyChanges, d broker.Declarations, unbind []broker.Binding) {
	for _, x := range d.Exchanges {
		changes.add("declared %s exchange %s", x.Type, x.Name)
	}
	for _, q := range d.Queues {
		changes.add("declared %s queue %s", q.Type, q.Name)
	}
	for _, pol := range d.Policies {
		if p.previousPolicy == nil {
			changes.add("created policy %s %v", pol.Name, pol.Definition)
		} else {
			changes.add("updated policy %s to %v", pol.Name, pol.Definition)
		}
	}
	for _, queue := range []string{p.want.DeadLetterQueue, p.want.Queue} {
		bound := slices.DeleteFunc(slices.Clone(d.Bindings), func(b broker.Binding) bool { return b.Queue != queue })
		if len(bound) > 0 {
			changes.add("bound queue %s: %s", queue, describeBindings(bound))
		}
		removed := slices.DeleteFunc(slices.Clone(unbind), func(b broker.Binding) bool { return b.Queue != queue })
		if len(removed) > 0 {
			changes.add("removed stale bindings of queue %s: %s", queue, describeBindings(removed))
		}
	}
}
