package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// reconcileTopology makes the broker hold the stream's topology. It sets TopologyReady and
// status.queue. It stops at the first failure; a conflicting queue or exchange stops it before
// anything is declared, and a queue another EventStream owns (QueueClaimed) too. A policy of
// someone else's that matches the queue does not stop it: TopologyReady says so
// (PolicyConflict or ForeignPolicyDisplaced) with a Warning Event, and the bridge is still
// reconciled.
//
// The topology is verified (listed and repaired) when the generation is new, at the
// stream's jittered resync, and when a queue is found missing; in between only the queue
// figures are read, from the broker's shared queue listing.
func (r *EventStreamReconciler) reconcileTopology(ctx context.Context, es *esv1.EventStream) error {
	last, verified := r.lastVerification(es)
	if verified && r.Clock.Now().Before(last.due) && topologyApplied(es) {
		missing, err := r.refreshQueueFigures(ctx, es, last.at)
		if err == nil && !missing {
			return nil
		}
	}
	r.verified.Delete(es.UID)
	notBefore := time.Time{}
	if verified {
		notBefore = last.at
	}
	conflicts, err := r.applyTopology(ctx, es, notBefore)
	if err != nil {
		se := asStepError(err, esv1.ReasonBrokerError)
		setCondition(es, esv1.ConditionTopologyReady, metav1.ConditionFalse, se.reason, se.message)
		return se
	}
	now := r.Clock.Now()
	r.verified.Store(es.UID, verification{generation: es.Generation, at: now, due: now.Add(r.Jitter(r.ResyncPeriod))})
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

// applyTopology declares what is missing and repairs what differs, judged by the broker's
// shared listings taken after notBefore: it checks the queue claim, the exchanges' types and
// the queue's arguments first, then declares the missing exchanges, dead-letter queue, queue,
// bindings and the policy (when missing or different) in one request (two when the policy
// creates the stream's claim: the bindings follow the re-check of the claims), and removes
// stale bindings after that. Nothing but the stream's own policy is ever changed on a queue another
// EventStream owns. It returns the foreign policies that conflict with the stream's policy.
func (r *EventStreamReconciler) applyTopology(ctx context.Context, es *esv1.EventStream, notBefore time.Time) (policyConflicts, error) {
	bc, conn, err := r.brokerClient(ctx, es)
	if err != nil {
		return policyConflicts{}, err
	}
	want := desiredTopology(es)
	changes := &topologyChanges{}
	defer func() {
		if len(changes.done) > 0 {
			r.event(es, corev1.EventTypeNormal, "TopologyChanged", "Reconcile", "%s", changes.note())
		}
	}()

	observed, err := r.listings.observe(ctx, conn, bc, notBefore)
	if err != nil {
		return policyConflicts{}, err
	}
	policies := observed.policies
	if err := r.claimQueue(ctx, bc, want, policies, changes); err != nil {
		r.listings.forgetPolicies(conn) // the stream may have withdrawn its policy
		return policyConflicts{}, err
	}
	if observed, err = confirmConflicts(ctx, bc, want, observed); err != nil {
		return policyConflicts{}, err
	}
	plan, err := planTopology(want, observed)
	if err != nil {
		return policyConflicts{}, err
	}
	// When the declaration creates the stream's claim, the bindings wait for the check that
	// no other stream claimed the queue at the same moment.
	objects, bindings := plan.declare, broker.Declarations{Bindings: plan.declare.Bindings}
	if plan.claims {
		objects.Bindings = nil
	} else {
		bindings.Bindings = nil
	}
	if err := r.declare(ctx, bc, conn, objects, plan.describe); err != nil {
		return policyConflicts{}, err
	}
	plan.record(changes, objects, nil)
	if plan.claims {
		// Another stream may have claimed the queue between the listing and the declaration.
		if policies, err = bc.ListPolicies(ctx); err != nil {
			return policyConflicts{}, brokerStepError(err, "list policies")
		}
		if err := r.claimQueue(ctx, bc, want, policies, changes); err != nil {
			r.listings.forgetPolicies(conn)
			return policyConflicts{}, err
		}
		if err := r.declare(ctx, bc, conn, bindings, plan.describe); err != nil {
			return policyConflicts{}, err
		}
	}
	for _, b := range plan.unbind {
		if err := bc.Unbind(ctx, b); err != nil && !errors.Is(err, broker.ErrNotFound) {
			return policyConflicts{}, brokerStepError(err, "unbind queue %s from %s with %q", b.Queue, b.Source, b.RoutingKey)
		}
	}
	r.listings.recordUnbound(conn, plan.unbind)
	plan.record(changes, bindings, plan.unbind)
	es.Status.Queue = plan.figures
	return foreignPolicies(policies, want), nil
}

// declare declares d, when it holds anything, and records it in the shared listings.
func (r *EventStreamReconciler) declare(ctx context.Context, bc broker.Client, conn broker.Connection, d broker.Declarations, describe func() string) error {
	if d.Empty() {
		return nil
	}
	if err := bc.Declare(ctx, d); err != nil {
		return brokerStepError(err, "declare %s", describe())
	}
	r.listings.recordDeclared(conn, d)
	return nil
}

// confirmConflicts reads the stream's queue and exchanges afresh when the listings show them
// in conflict with the declaration, so that a listing up to maxAge old never stalls a stream:
// a conflict is reported only as the broker holds it now. It returns observed with those
// objects as read.
func confirmConflicts(ctx context.Context, bc broker.Client, want topology, observed observedTopology) (observedTopology, error) {
	if q, ok := observed.queues[want.Queue]; ok && len(queueConflicts(&q, want)) > 0 {
		fresh, err := bc.GetQueue(ctx, want.Queue)
		if err != nil && !errors.Is(err, broker.ErrNotFound) {
			return observed, brokerStepError(err, "read queue %s", want.Queue)
		}
		observed.queues = maps.Clone(observed.queues)
		delete(observed.queues, want.Queue)
		if fresh != nil {
			observed.queues[want.Queue] = *fresh
		}
	}
	for _, x := range []struct{ name, kind string }{{want.Exchange, "topic"}, {want.DeadLetterExchange, "fanout"}} {
		if have, ok := observed.exchanges[x.name]; x.name == "" || !ok || have.Type == x.kind {
			continue
		}
		fresh, err := bc.GetExchange(ctx, x.name)
		if err != nil && !errors.Is(err, broker.ErrNotFound) {
			return observed, brokerStepError(err, "read exchange %s", x.name)
		}
		observed.exchanges = maps.Clone(observed.exchanges)
		delete(observed.exchanges, x.name)
		if fresh != nil {
			observed.exchanges[x.name] = *fresh
		}
	}
	return observed, nil
}

// claimQueue returns nil when the stream may own its queue by policies (see queueOwner).
// When another EventStream owns the queue it withdraws this stream's competing claim (its own
// policy on the same or an overlapping queue; a policy on the stream's previous queue stays
// with that queue) and returns a stalled QueueClaimed error naming the owner.
func (r *EventStreamReconciler) claimQueue(ctx context.Context, bc broker.Client, want topology, policies []broker.Policy, changes *topologyChanges) error {
	owner := queueOwner(policies, want)
	if owner == nil {
		return nil
	}
	competing := func(p broker.Policy) bool {
		queue, ok := claimedQueue(p)
		return p.Name == want.Policy.Name && ok && slices.Contains(overlappingQueues(want.Queue), queue)
	}
	if slices.ContainsFunc(policies, competing) {
		if err := bc.DeletePolicy(ctx, want.Policy.Name); err != nil && !errors.Is(err, broker.ErrNotFound) {
			return brokerStepError(err, "delete policy %s", want.Policy.Name)
		}
		changes.add("removed policy %s: queue %s belongs to EventStream %s", want.Policy.Name, want.Queue, owner.Owner)
	}
	return newStepError(stalled, esv1.ReasonQueueClaimed, nil, "%s", claimMessage(want, owner))
}

// verification records a successful full topology verification.
type verification struct {
	generation int64
	at         time.Time
	// due is when the next verification is due: at plus the jittered resync period, so that
	// streams created together do not resync together.
	due time.Time
}

// lastVerification returns the stream's last verification when it verified this generation.
func (r *EventStreamReconciler) lastVerification(es *esv1.EventStream) (verification, bool) {
	v, ok := r.verified.Load(es.UID)
	if !ok {
		return verification{}, false
	}
	rec := v.(verification)
	return rec, rec.generation == es.Generation
}

// topologyApplied reports whether TopologyReady says the topology was applied: True, or only
// held back by a foreign policy (which a resync re-checks).
func topologyApplied(es *esv1.EventStream) bool {
	c := meta.FindStatusCondition(es.Status.Conditions, esv1.ConditionTopologyReady)
	return c != nil && (c.Status == metav1.ConditionTrue || c.Reason == esv1.ReasonPolicyConflict)
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
	queues, listedAt, err := r.listings.queueFigures(ctx, conn, bc, time.Time{})
	if err != nil {
		return false, err
	}
	if !hasQueues(queues, want) && !listedAt.After(verifiedAt) {
		// The listing predates the queues' verification: only a newer one can tell.
		if queues, _, err = r.listings.queueFigures(ctx, conn, bc, verifiedAt); err != nil {
			return false, err
		}
	}
	if !hasQueues(queues, want) {
		return true, nil
	}
	es.Status.Queue = figuresOf(queues, want)
	return false, nil
}

// figuresOf is status.queue from a listing that holds the stream's queues.
func figuresOf(queues map[string]broker.Queue, want topology) *esv1.QueueStatus {
	q := queues[want.Queue]
	status := queueStatus(&q)
	if want.DeadLetterQueue != "" {
		status.DeadLettered = queues[want.DeadLetterQueue].Messages
	}
	return status
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

func queueStatus(q *broker.Queue) *esv1.QueueStatus {
	return &esv1.QueueStatus{Name: q.Name, MessagesReady: q.MessagesReady,
		MessagesUnacknowledged: q.MessagesUnacknowledged, Consumers: q.Consumers}
}

// topologyChanges collects what a reconcile changed on the broker, for Events.
type topologyChanges struct{ done []string }

func (c *topologyChanges) add(format string, args ...any) {
	c.done = append(c.done, fmt.Sprintf(format, args...))
}

// maxEventNote is the longest note the API server accepts on an Event.
const maxEventNote = 1024

// note is one Event's note for all the changes of a reconcile: Events of one stream, reason
// and action are one series to the Events library, whatever their notes, and every Event of a
// series costs an update of it later, so a reconcile records one.
func (c *topologyChanges) note() string {
	note := strings.Join(c.done, "; ")
	if len(note) > maxEventNote {
		cut := maxEventNote - len("…")
		for cut > 0 && !utf8.RuneStart(note[cut]) {
			cut--
		}
		note = note[:cut] + "…"
	}
	return note
}

// cleanupTopology removes what the stream created on the broker: policy, queue (and with it
// its bindings), dead-letter queue and exchange, and the exchange itself only when the spec
// allows it and nothing else uses it. Objects already gone count as removed. When another
// EventStream claims the queue (or an overlapping one), only the stream's own policy is
// removed and that claim is returned.
func (r *EventStreamReconciler) cleanupTopology(ctx context.Context, es *esv1.EventStream) (*queueClaim, error) {
	bc, conn, err := r.brokerClient(ctx, es)
	if err != nil {
		return nil, err
	}
	defer r.listings.forget(conn)
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
