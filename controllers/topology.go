package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// reconcileTopology makes the broker hold the stream's topology, observing every object
// afresh (nothing is remembered between reconciles, so a queue deleted in the management UI
// is noticed at the next resync). It sets TopologyReady and status.queue. It stops at the
// first failure; a conflicting queue stops it before anything is bound to that queue, and a
// queue another EventStream owns (QueueClaimed) before anything is declared. A policy of
// someone else's that matches the queue does not stop it: TopologyReady says so
// (PolicyConflict or ForeignPolicyDisplaced) with a Warning Event, and the bridge is still
// reconciled.
//
// Between resyncs, when this generation was verified and is Ready, only the queue figures
// are read (two requests); a queue found missing then triggers the full verification at once.
func (r *EventStreamReconciler) reconcileTopology(ctx context.Context, es *esv1.EventStream) error {
	if verifiedAt, ok := r.recentlyVerified(es); ok {
		missing, err := r.refreshQueueFigures(ctx, es, verifiedAt)
		if err == nil && !missing {
			return nil
		}
	}
	r.verified.Delete(es.UID)
	conflicts, err := r.applyTopology(ctx, es)
	if err != nil {
		se := asStepError(err, esv1.ReasonBrokerError)
		setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionFalse, se.reason, se.message)
		return se
	}
	r.verified.Store(es.UID, verification{generation: es.Generation, at: r.Clock.Now()})
	r.reportPolicyConflicts(es, desiredTopology(es), conflicts)
	return nil
}

// reportPolicyConflicts sets TopologyReady after a successful apply: False with
// PolicyConflict when a foreign policy overrides the operator's, True with
// ForeignPolicyDisplaced when the operator's displaces one, otherwise True with
// TopologyReconciled. A conflict is recorded as a Warning Event when the condition changes.
func (r *EventStreamReconciler) reportPolicyConflicts(es *esv1.EventStream, want topology, c policyConflicts) {
	const ok = "exchange, queue, bindings and policy exist as declared"
	var changed bool
	var message string
	switch {
	case len(c.Overriding) > 0:
		message = fmt.Sprintf("policy %s matches queue %s with a priority at least that of the operator's policy %s (%d), "+
			"so RabbitMQ applies it instead: the declared message TTL, dead-lettering and length limits are not in effect "+
			"(bindings and bridge are reconciled). Lower its priority below %d or change its pattern so that it does not match %s",
			describePolicies(c.Overriding), want.Queue, want.Policy.Name, want.Policy.Priority, want.Policy.Priority, want.Queue)
		changed = setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionFalse, esv1.ReasonPolicyConflict, message)
	case len(c.Displaced) > 0:
		message = fmt.Sprintf("policy %s matches queue %s but no longer applies to it: RabbitMQ applies one policy per queue "+
			"and the operator's policy %s has the higher priority (%d). Exclude %s from its pattern to silence this",
			describePolicies(c.Displaced), want.Queue, want.Policy.Name, want.Policy.Priority, want.Queue)
		changed = setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionTrue, esv1.ReasonForeignPolicyDisplaced, ok+"; "+message)
	default:
		setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionTrue, esv1.ReasonTopologyReconciled, ok)
		return
	}
	if changed {
		r.event(es, corev1.EventTypeWarning, esv1.ReasonPolicyConflict, "Reconcile", "%s", message)
	}
}

// applyTopology declares what is missing and repairs what differs, in this order: the queue
// claim, exchanges, dead-letter queue, queue, policy, bindings. Nothing but the stream's own
// policy is ever changed on a queue another EventStream owns. It returns the foreign policies
// that conflict with the stream's policy.
func (r *EventStreamReconciler) applyTopology(ctx context.Context, es *esv1.EventStream) (policyConflicts, error) {
	bc, _, err := r.brokerClient(ctx, es)
	if err != nil {
		return policyConflicts{}, err
	}
	want := desiredTopology(es)
	changes := &topologyChanges{}
	defer func() {
		for _, c := range changes.done {
			r.event(es, corev1.EventTypeNormal, "TopologyChanged", "Reconcile", "%s", c)
		}
	}()

	policies, err := r.claimQueue(ctx, bc, want, changes)
	if err != nil {
		return policyConflicts{}, err
	}
	if err := r.ensureExchange(ctx, bc, want.Exchange, "topic", changes); err != nil {
		return policyConflicts{}, err
	}
	if want.DeadLetterExchange != "" {
		if err := r.ensureExchange(ctx, bc, want.DeadLetterExchange, "fanout", changes); err != nil {
			return policyConflicts{}, err
		}
		if _, err := r.ensureQueue(ctx, bc, want.DeadLetterQueue, string(esv1.QueueTypeClassic), nil, changes); err != nil {
			return policyConflicts{}, err
		}
		dlqBinding := broker.Binding{Source: want.DeadLetterExchange, Queue: want.DeadLetterQueue, RoutingKey: ""}
		if err := r.ensureBindings(ctx, bc, want.DeadLetterQueue, []broker.Binding{dlqBinding}, changes); err != nil {
			return policyConflicts{}, err
		}
	}
	if _, err := r.ensureQueue(ctx, bc, want.Queue, want.QueueType, &want, changes); err != nil {
		return policyConflicts{}, err
	}
	claimed, err := r.ensurePolicy(ctx, bc, want.Policy, changes)
	if err != nil {
		return policyConflicts{}, err
	}
	if claimed {
		// Another stream may have claimed the queue between the listing and the claim.
		if policies, err = r.claimQueue(ctx, bc, want, changes); err != nil {
			return policyConflicts{}, err
		}
	}
	if err := r.ensureBindings(ctx, bc, want.Queue, want.Bindings, changes); err != nil {
		return policyConflicts{}, err
	}

	status, err := queueFigures(ctx, bc, want)
	if err != nil {
		return policyConflicts{}, brokerStepError(err, "read queue figures")
	}
	es.Status.Queue = status
	return foreignPolicies(policies, want), nil
}

// claimQueue lists the virtual host's policies and returns them when this stream may own
// its queue (see queueOwner). When another EventStream owns the queue it withdraws this
// stream's competing claim (its own policy on the same or an overlapping queue; a policy on
// the stream's previous queue stays with that queue) and returns a stalled QueueClaimed
// error naming the owner.
func (r *EventStreamReconciler) claimQueue(ctx context.Context, bc broker.Client, want topology, changes *topologyChanges) ([]broker.Policy, error) {
	policies, err := bc.ListPolicies(ctx)
	if err != nil {
		return nil, brokerStepError(err, "list policies")
	}
	owner := queueOwner(policies, want)
	if owner == nil {
		return policies, nil
	}
	competing := func(p broker.Policy) bool {
		queue, ok := claimedQueue(p)
		return p.Name == want.Policy.Name && ok && slices.Contains(overlappingQueues(want.Queue), queue)
	}
	if slices.ContainsFunc(policies, competing) {
		if err := bc.DeletePolicy(ctx, want.Policy.Name); err != nil && !errors.Is(err, broker.ErrNotFound) {
			return nil, brokerStepError(err, "delete policy %s", want.Policy.Name)
		}
		changes.add("removed policy %s: queue %s belongs to EventStream %s", want.Policy.Name, want.Queue, owner.Owner)
	}
	return nil, newStepError(stalled, esv1.ReasonQueueClaimed, nil, "%s", claimMessage(want, owner))
}

// verification records a successful full topology verification.
type verification struct {
	generation int64
	at         time.Time
}

// recentlyVerified reports whether this generation was fully verified within the resync
// period and is Ready (or only held back by a foreign policy, which a resync re-checks), and
// when.
func (r *EventStreamReconciler) recentlyVerified(es *esv1.EventStream) (time.Time, bool) {
	v, ok := r.verified.Load(es.UID)
	if !ok {
		return time.Time{}, false
	}
	rec := v.(verification)
	c := meta.FindStatusCondition(es.Status.Conditions, esv1.ConditionTopologyReady)
	applied := c != nil && (c.Status == metav1.ConditionTrue || c.Reason == esv1.ReasonPolicyConflict)
	return rec.at, rec.generation == es.Generation && r.Clock.Since(rec.at) < r.ResyncPeriod && applied
}

// refreshQueueFigures reads the queue and dead-letter queue figures into status.queue from
// the broker's shared queue listing. It reports missing when either queue is absent from a
// listing taken after the stream's last verification.
func (r *EventStreamReconciler) refreshQueueFigures(ctx context.Context, es *esv1.EventStream, verifiedAt time.Time) (missing bool, err error) {
	bc, conn, err := r.brokerClient(ctx, es)
	if err != nil {
		return false, err
	}
	want := desiredTopology(es)
	queues, listedAt, err := r.snapshots.queues(ctx, conn, bc, time.Time{})
	if err != nil {
		return false, err
	}
	if !hasQueues(queues, want) && listedAt.Before(verifiedAt) {
		// The listing predates the queues' verification: only a newer one can tell.
		if queues, _, err = r.snapshots.queues(ctx, conn, bc, verifiedAt); err != nil {
			return false, err
		}
	}
	if !hasQueues(queues, want) {
		return true, nil
	}
	q := queues[want.Queue]
	status := queueStatus(&q)
	if want.DeadLetterQueue != "" {
		status.DeadLettered = queues[want.DeadLetterQueue].Messages
	}
	es.Status.Queue = status
	return false, nil
}

// hasQueues reports whether queues holds the stream's queue and dead-letter queue.
func hasQueues(queues map[string]broker.Queue, want topology) bool {
	if _, ok := queues[want.Queue]; !ok {
		return false
	}
	if want.DeadLetterQueue == "" {
		return true
	}
	_, ok := queues[want.DeadLetterQueue]
	return ok
}

// queueFigures reads the queue's and the dead-letter queue's figures. ErrNotFound means one
// of them is missing.
func queueFigures(ctx context.Context, bc broker.Client, want topology) (*esv1.QueueStatus, error) {
	q, err := bc.GetQueue(ctx, want.Queue)
	if err != nil {
		return nil, err
	}
	status := queueStatus(q)
	if want.DeadLetterQueue != "" {
		dlq, err := bc.GetQueue(ctx, want.DeadLetterQueue)
		if err != nil {
			return nil, err
		}
		status.DeadLettered = dlq.Messages
	}
	return status, nil
}

func queueStatus(q *broker.Queue) *esv1.QueueStatus {
	return &esv1.QueueStatus{Name: q.Name, MessagesReady: q.MessagesReady,
		MessagesUnacknowledged: q.MessagesUnacknowledged, Consumers: q.Consumers}
}

// topologyChanges collects what a reconcile changed on the broker, for Events.
type topologyChanges struct{ done []string }

func (c *topologyChanges) add(format string, args ...any) {
	c.done = append(c.done, fmt.Sprintf(format, args...))
}

func (r *EventStreamReconciler) ensureExchange(ctx context.Context, bc broker.Client, name, kind string, changes *topologyChanges) error {
	ex, err := bc.GetExchange(ctx, name)
	switch {
	case errors.Is(err, broker.ErrNotFound):
		if err := bc.DeclareExchange(ctx, name, kind); err != nil {
			return brokerStepError(err, "declare exchange %s", name)
		}
		changes.add("declared %s exchange %s", kind, name)
		return nil
	case err != nil:
		return brokerStepError(err, "read exchange %s", name)
	case ex.Type != kind:
		return newStepError(stalled, esv1.ReasonBrokerError, nil,
			"exchange %s exists with type %s, declared %s; delete it or choose another name", name, ex.Type, kind)
	}
	return nil
}

// ensureQueue declares the queue when it is missing. When want is given, an existing queue
// is checked for conflicts with it (reason QueueArgumentsConflict, stalled).
func (r *EventStreamReconciler) ensureQueue(ctx context.Context, bc broker.Client, name, queueType string, want *topology, changes *topologyChanges) (*broker.Queue, error) {
	q, err := bc.GetQueue(ctx, name)
	if errors.Is(err, broker.ErrNotFound) {
		if err := bc.DeclareQueue(ctx, name, queueType); err != nil {
			return nil, brokerStepError(err, "declare queue %s", name)
		}
		changes.add("declared %s queue %s", queueType, name)
		return &broker.Queue{Name: name, Type: queueType, Durable: true}, nil
	}
	if err != nil {
		return nil, brokerStepError(err, "read queue %s", name)
	}
	if want != nil {
		if conflicts := queueConflicts(q, *want); len(conflicts) > 0 {
			return nil, newStepError(stalled, esv1.ReasonQueueArgumentsConflict, nil,
				"queue %s exists with arguments that differ from the declared ones: %s; delete the queue or choose another name",
				name, strings.Join(conflicts, "; "))
		}
	}
	return q, nil
}

// ensurePolicy writes the stream's policy when it is missing or differs. It reports claimed
// when the write made the policy claim a queue it did not claim before (created it, or
// changed its pattern).
func (r *EventStreamReconciler) ensurePolicy(ctx context.Context, bc broker.Client, want broker.Policy, changes *topologyChanges) (claimed bool, err error) {
	have, err := bc.GetPolicy(ctx, want.Name)
	if err != nil && !errors.Is(err, broker.ErrNotFound) {
		return false, brokerStepError(err, "read policy %s", want.Name)
	}
	if err == nil && have.Pattern == want.Pattern && have.ApplyTo == want.ApplyTo &&
		have.Priority == want.Priority && sameDefinition(have.Definition, want.Definition) {
		return false, nil
	}
	if err := bc.PutPolicy(ctx, want); err != nil {
		return false, brokerStepError(err, "put policy %s", want.Name)
	}
	if have == nil {
		changes.add("created policy %s %v", want.Name, want.Definition)
		return true, nil
	}
	changes.add("updated policy %s to %v", want.Name, want.Definition)
	return have.Pattern != want.Pattern || have.ApplyTo != want.ApplyTo, nil
}

func (r *EventStreamReconciler) ensureBindings(ctx context.Context, bc broker.Client, queue string, want []broker.Binding, changes *topologyChanges) error {
	have, err := bc.ListQueueBindings(ctx, queue)
	if err != nil {
		return brokerStepError(err, "list bindings of queue %s", queue)
	}
	add, remove := bindingChanges(have, want)
	for _, b := range add {
		if err := bc.Bind(ctx, b); err != nil {
			return brokerStepError(err, "bind queue %s to %s with %q", queue, b.Source, b.RoutingKey)
		}
	}
	for _, b := range remove {
		if err := bc.Unbind(ctx, b); err != nil {
			return brokerStepError(err, "unbind queue %s from %s with %q", queue, b.Source, b.RoutingKey)
		}
	}
	if len(add) > 0 {
		changes.add("bound queue %s: %s", queue, describeBindings(add))
	}
	if len(remove) > 0 {
		changes.add("removed stale bindings of queue %s: %s", queue, describeBindings(remove))
	}
	return nil
}

// cleanupTopology removes what the stream created on the broker: policy, queue (and with it
// its bindings), dead-letter queue and exchange, and the exchange itself only when the spec
// allows it and nothing else uses it. Objects already gone count as removed. When another
// EventStream claims the queue (or an overlapping one), only the stream's own policy is
// removed and that claim is returned.
func (r *EventStreamReconciler) cleanupTopology(ctx context.Context, es *esv1.EventStream) (*queueClaim, error) {
	bc, _, err := r.brokerClient(ctx, es)
	if err != nil {
		return nil, err
	}
	want := desiredTopology(es)
	policies, err := bc.ListPolicies(ctx)
	if err != nil {
		return nil, brokerStepError(err, "list policies")
	}
	if err := bc.DeletePolicy(ctx, want.Policy.Name); err != nil && !errors.Is(err, broker.ErrNotFound) {
		return nil, brokerStepError(err, "delete policy %s", want.Policy.Name)
	}
	if claims := otherClaims(policies, want); len(claims) > 0 {
		return &claims[0], nil
	}
	return nil, r.deleteOwnedTopology(ctx, bc, es, want)
}

// deleteOwnedTopology deletes the queue, dead-letter objects and, when allowed and unused,
// the exchange of a stream that owns its queue.
func (r *EventStreamReconciler) deleteOwnedTopology(ctx context.Context, bc broker.Client, es *esv1.EventStream, want topology) error {
	for _, q := range append([]string{want.Queue, want.DeadLetterQueue}, want.BridgeQueues...) {
		if q == "" {
			continue
		}
		if err := bc.DeleteQueue(ctx, q); err != nil && !errors.Is(err, broker.ErrNotFound) {
			return brokerStepError(err, "delete queue %s", q)
		}
	}
	if want.DeadLetterExchange != "" {
		if err := bc.DeleteExchange(ctx, want.DeadLetterExchange); err != nil && !errors.Is(err, broker.ErrNotFound) {
			return brokerStepError(err, "delete exchange %s", want.DeadLetterExchange)
		}
	}
	if !es.Spec.Exchange.DeleteWhenUnused {
		return nil
	}
	inUse, err := r.exchangeUsedByOthers(ctx, es, want.Exchange)
	if err != nil {
		return err
	}
	if inUse {
		r.event(es, corev1.EventTypeNormal, "ExchangeKept", "Delete", "exchange %s is used by another EventStream; kept", want.Exchange)
		return nil
	}
	bound, err := bc.ListExchangeBindings(ctx, want.Exchange)
	if err != nil && !errors.Is(err, broker.ErrNotFound) {
		return brokerStepError(err, "list bindings of exchange %s", want.Exchange)
	}
	if len(bound) > 0 {
		r.event(es, corev1.EventTypeNormal, "ExchangeKept", "Delete", "exchange %s still routes to %d other queue(s); kept", want.Exchange, len(bound))
		return nil
	}
	if err := bc.DeleteExchange(ctx, want.Exchange); err != nil && !errors.Is(err, broker.ErrNotFound) {
		return brokerStepError(err, "delete exchange %s", want.Exchange)
	}
	return nil
}

func (r *EventStreamReconciler) exchangeUsedByOthers(ctx context.Context, es *esv1.EventStream, exchange string) (bool, error) {
	var all esv1.EventStreamList
	if err := r.List(ctx, &all); err != nil {
		return false, fmt.Errorf("list EventStreams: %w", err)
	}
	for _, other := range all.Items {
		if other.UID == es.UID || !other.DeletionTimestamp.IsZero() {
			continue
		}
		if desiredTopology(&other).Exchange == exchange {
			return true, nil
		}
	}
	return false, nil
}

// brokerStepError classifies a broker error: unreachable is transient with reason
// BrokerUnreachable; an error answer is transient with reason BrokerError.
func brokerStepError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, broker.ErrUnreachable) {
		return newStepError(transient, esv1.ReasonBrokerUnreachable, err, "%s: %v", what, err)
	}
	// A 4xx answer (a name of another type, a refused argument) repeats until someone changes
	// the spec or the broker: stalled, looked at again only at the resync period.
	var answer *broker.BrokerError
	if errors.As(err, &answer) && answer.StatusCode >= 400 && answer.StatusCode < 500 {
		return newStepError(stalled, esv1.ReasonBrokerError, err, "%s: %v", what, err)
	}
	return newStepError(transient, esv1.ReasonBrokerError, err, "%s: %v", what, err)
}
