package controllers

import (
	"context"
	"errors"
	"fmt"
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
// first failure; a conflicting queue stops it before anything is bound to that queue.
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
	err := r.applyTopology(ctx, es)
	if err != nil {
		se := asStepError(err, esv1.ReasonBrokerError)
		setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionFalse, se.reason, se.message)
		return se
	}
	r.verified.Store(es.UID, verification{generation: es.Generation, at: r.Clock.Now()})
	setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionTrue, esv1.ReasonTopologyReconciled,
		"exchange, queue, bindings and policy exist as declared")
	return nil
}

func (r *EventStreamReconciler) applyTopology(ctx context.Context, es *esv1.EventStream) error {
	bc, _, err := r.brokerClient(ctx, es)
	if err != nil {
		return err
	}
	want := desiredTopology(es)
	changes := &topologyChanges{}

	if err := r.ensureExchange(ctx, bc, want.Exchange, "topic", changes); err != nil {
		return err
	}
	if want.DeadLetterExchange != "" {
		if err := r.ensureExchange(ctx, bc, want.DeadLetterExchange, "fanout", changes); err != nil {
			return err
		}
		if _, err := r.ensureQueue(ctx, bc, want.DeadLetterQueue, string(esv1.QueueTypeClassic), nil, changes); err != nil {
			return err
		}
		dlqBinding := broker.Binding{Source: want.DeadLetterExchange, Queue: want.DeadLetterQueue, RoutingKey: ""}
		if err := r.ensureBindings(ctx, bc, want.DeadLetterQueue, []broker.Binding{dlqBinding}, changes); err != nil {
			return err
		}
	}
	if _, err := r.ensureQueue(ctx, bc, want.Queue, want.QueueType, &want, changes); err != nil {
		return err
	}
	if err := r.ensurePolicy(ctx, bc, want.Policy, changes); err != nil {
		return err
	}
	if err := r.ensureBindings(ctx, bc, want.Queue, want.Bindings, changes); err != nil {
		return err
	}

	status, err := queueFigures(ctx, bc, want)
	if err != nil {
		return brokerStepError(err, "read queue figures")
	}
	es.Status.Queue = status
	for _, c := range changes.done {
		r.event(es, corev1.EventTypeNormal, "TopologyChanged", "Reconcile", "%s", c)
	}
	return nil
}

// verification records a successful full topology verification.
type verification struct {
	generation int64
	at         time.Time
}

// recentlyVerified reports whether this generation was fully verified within the resync
// period and is Ready, and when.
func (r *EventStreamReconciler) recentlyVerified(es *esv1.EventStream) (time.Time, bool) {
	v, ok := r.verified.Load(es.UID)
	if !ok {
		return time.Time{}, false
	}
	rec := v.(verification)
	return rec.at, rec.generation == es.Generation && r.Clock.Since(rec.at) < r.ResyncPeriod &&
		meta.IsStatusConditionTrue(es.Status.Conditions, esv1.ConditionTopologyReady)
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

func (r *EventStreamReconciler) ensurePolicy(ctx context.Context, bc broker.Client, want broker.Policy, changes *topologyChanges) error {
	have, err := bc.GetPolicy(ctx, want.Name)
	if err != nil && !errors.Is(err, broker.ErrNotFound) {
		return brokerStepError(err, "read policy %s", want.Name)
	}
	if err == nil && have.Pattern == want.Pattern && have.ApplyTo == want.ApplyTo &&
		have.Priority == want.Priority && sameDefinition(have.Definition, want.Definition) {
		return nil
	}
	if err := bc.PutPolicy(ctx, want); err != nil {
		return brokerStepError(err, "put policy %s", want.Name)
	}
	if have == nil {
		changes.add("created policy %s %v", want.Name, want.Definition)
	} else {
		changes.add("updated policy %s to %v", want.Name, want.Definition)
	}
	return nil
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
// allows it and nothing else uses it. Objects already gone count as removed.
func (r *EventStreamReconciler) cleanupTopology(ctx context.Context, es *esv1.EventStream) error {
	bc, _, err := r.brokerClient(ctx, es)
	if err != nil {
		return err
	}
	want := desiredTopology(es)
	if err := bc.DeletePolicy(ctx, want.Policy.Name); err != nil && !errors.Is(err, broker.ErrNotFound) {
		return brokerStepError(err, "delete policy %s", want.Policy.Name)
	}
	for _, q := range []string{want.Queue, want.DeadLetterQueue} {
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
	return newStepError(transient, esv1.ReasonBrokerError, err, "%s: %v", what, err)
}
