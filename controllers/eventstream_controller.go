// Package controllers holds the EventStream reconciler: broker topology (topology*.go), the
// bridge workload (workload*.go) and status (status*.go), one concern per file.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/bridge/tracing"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// Finalizer guards the broker objects of a stream until they are cleaned up.
const Finalizer = "sse.eventstream.dev/topology"

// secretIndexKey indexes EventStreams by the names of the Secrets they read.
const secretIndexKey = ".spec.secretNames"

// EventStreamReconciler reconciles EventStreams.
type EventStreamReconciler struct {
	client.Client
	// APIReader reads past the cache; the manager's by default.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// NewBrokerClient makes broker clients; set it in tests, or leave it nil for the
	// management API with BrokerQPS / BrokerBurst.
	NewBrokerClient broker.Factory
	BrokerQPS       float64
	BrokerBurst     int

	// ResyncPeriod is how often a stream is checked against the broker when nothing
	// changed (drift detection), jittered.
	ResyncPeriod time.Duration
	// DeletionTimeout bounds how long deletion waits for an unreachable broker before the
	// finalizer is removed anyway with a Warning event.
	DeletionTimeout time.Duration
	// Jitter spreads requeue delays; Jitter by default.
	Jitter func(time.Duration) time.Duration
	// MaxConcurrentReconciles defaults to 4.
	MaxConcurrentReconciles int

	// BridgeImage runs the bridge pods unless a stream names its own image.
	BridgeImage string
	// BridgeImagePullSecrets name Secrets, in each stream's namespace, put on the bridge
	// ServiceAccount's imagePullSecrets.
	BridgeImagePullSecrets []string
	// StatusInterval is how often queue and bridge figures are refreshed, jittered.
	StatusInterval time.Duration
	// Scraper reads bridge pods' metrics; an HTTP scraper with a 2 s timeout by default.
	Scraper MetricsScraper

	// verified remembers, per stream, the generation and time of the last full topology
	// verification, so that between resyncs only the queue figures are read.
	verified sync.Map // types.UID -> verification
	// applied remembers, per stream, what its bridge children were last applied from, so that
	// a reconcile that only refreshes figures applies nothing.
	applied sync.Map // types.UID -> appliedWorkload
	// listings share broker listings among the streams of one broker.
	listings *brokerListings
	// insecureWarned holds the streams whose InsecureAuth Warning was emitted.
	insecureWarned sync.Map // types.UID -> struct{}
}

// RBAC, least privilege; docs/operator.md says why each rule exists.
// +kubebuilder:rbac:groups=sse.eventstream.dev,resources=eventstreams,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=sse.eventstream.dev,resources=eventstreams/status,verbs=get;patch
// +kubebuilder:rbac:groups=sse.eventstream.dev,resources=eventstreams/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one EventStream's broker topology (and bridge) to the declared state and
// writes its status once, as a patch, only when it changed. It returns an error only for
// transient failures (retried with jittered backoff); otherwise it requeues after the
// jittered resync period.
func (r *EventStreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ctx, span := tracing.StartReconcile(ctx, req.Namespace, req.Name)
	defer func() { tracing.EndReconcile(span, retErr) }()
	es := &esv1.EventStream{}
	if err := r.Get(ctx, req.NamespacedName, es); err != nil {
		if apierrors.IsNotFound(err) {
			forgetStreamMetrics(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !es.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, es)
	}
	if !controllerutil.ContainsFinalizer(es, Finalizer) {
		patch := client.MergeFrom(es.DeepCopy())
		controllerutil.AddFinalizer(es, Finalizer)
		if err := r.Patch(ctx, es, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	before := es.DeepCopy()
	defer func() {
		recordStreamMetrics(es)
		if err := r.patchStatus(ctx, before, es); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	r.reconcileAuthWarning(es)
	steps := []func(context.Context, *esv1.EventStream) error{
		r.reconcileTopology,
		r.reconcileWorkload,
		r.reconcileBridgeStatus,
	}
	for _, step := range steps {
		if err := step(ctx, es); err != nil {
			summarizeReady(es)
			setProgress(es, asStepError(err, esv1.ReasonWorkloadError))
			return r.afterFailure(ctx, before, es, err)
		}
	}
	es.Status.ObservedGeneration = es.Generation
	summarizeReady(es)
	setProgress(es, nil)
	return ctrl.Result{RequeueAfter: r.statusRequeue()}, nil
}

// afterFailure emits a Warning when a condition newly fails and decides how to go on by the
// error's kind.
func (r *EventStreamReconciler) afterFailure(ctx context.Context, before, es *esv1.EventStream, err error) (ctrl.Result, error) {
	se := asStepError(err, esv1.ReasonWorkloadError)
	reconcileErrors.WithLabelValues(se.reason).Inc()
	if conditionsChanged(before, es) {
		r.event(es, corev1.EventTypeWarning, se.reason, "Reconcile", "%s", se.message)
	}
	switch se.kind {
	case waiting, stalled:
		log.FromContext(ctx).Info("reconcile stopped", "reason", se.reason, "message", se.message)
		return ctrl.Result{RequeueAfter: r.Jitter(r.ResyncPeriod)}, nil
	default:
		return ctrl.Result{}, se
	}
}

// reconcileDelete cleans up the broker (deletionPolicy Delete) and removes the finalizer.
// When the Secret is gone, or the broker stays unreachable past DeletionTimeout, the
// finalizer is removed anyway with a Warning event naming what was left behind: a namespace
// never hangs in Terminating because of this operator.
func (r *EventStreamReconciler) reconcileDelete(ctx context.Context, es *esv1.EventStream) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(es, Finalizer) {
		return ctrl.Result{}, nil
	}
	r.insecureWarned.Delete(es.UID)
	r.applied.Delete(es.UID)
	r.verified.Delete(es.UID)
	if es.Spec.DeletionPolicy == esv1.DeletionPolicyRetain {
		r.event(es, corev1.EventTypeNormal, "TopologyRetained", "Delete", "deletionPolicy Retain: broker objects kept")
		return ctrl.Result{}, r.removeFinalizer(ctx, es)
	}
	owner, err := r.cleanupTopology(ctx, es)
	if err == nil {
		if owner != nil {
			r.event(es, corev1.EventTypeNormal, "TopologyKept", "Delete", "queue %s belongs to EventStream %s (policy %s): only this stream's own policy was removed",
				desiredTopology(es).Queue, owner.Owner, owner.Policy)
		} else {
			r.event(es, corev1.EventTypeNormal, "TopologyDeleted", "Delete", "removed policy, queue and dead-letter objects of queue %s", desiredTopology(es).Queue)
		}
		return ctrl.Result{}, r.removeFinalizer(ctx, es)
	}
	se := asStepError(err, esv1.ReasonBrokerError)
	reconcileErrors.WithLabelValues(se.reason).Inc()
	deadline := es.DeletionTimestamp.Add(r.DeletionTimeout)
	remaining := deadline.Sub(r.Clock.Now())
	if se.kind != transient || remaining <= 0 {
		r.event(es, corev1.EventTypeWarning, "TopologyCleanupAbandoned", "Delete",
			"broker objects of queue %s were left in place: %s", desiredTopology(es).Queue, se.message)
		return ctrl.Result{}, r.removeFinalizer(ctx, es)
	}
	r.event(es, corev1.EventTypeWarning, "TopologyCleanupFailed", "Delete", "%s; retrying until %s", se.message, deadline.UTC().Format(time.RFC3339))
	return ctrl.Result{RequeueAfter: min(r.Jitter(5*time.Second), remaining)}, nil
}

func (r *EventStreamReconciler) removeFinalizer(ctx context.Context, es *esv1.EventStream) error {
	patch := client.MergeFrom(es.DeepCopy())
	if !controllerutil.RemoveFinalizer(es, Finalizer) {
		return nil
	}
	if err := r.Patch(ctx, es, patch); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("remove finalizer: %w", err))
	}
	return nil
}

// patchStatus writes the status when it differs from before.
func (r *EventStreamReconciler) patchStatus(ctx context.Context, before, es *esv1.EventStream) error {
	if equality.Semantic.DeepEqual(before.Status, es.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, es, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("patch status: %w", err))
	}
	return nil
}

func conditionsChanged(before, after *esv1.EventStream) bool {
	return !equality.Semantic.DeepEqual(before.Status.Conditions, after.Status.Conditions)
}

func (r *EventStreamReconciler) event(es *esv1.EventStream, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(es, nil, eventType, reason, action, note, args...)
	}
}

// SetupWithManager registers the reconciler, its Secret watch, the hand-off of a deleted
// stream's queue to the streams waiting for it, and defaults.
func (r *EventStreamReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Jitter == nil {
		r.Jitter = Jitter
	}
	if r.ResyncPeriod == 0 {
		r.ResyncPeriod = 5 * time.Minute
	}
	if r.DeletionTimeout == 0 {
		r.DeletionTimeout = 2 * time.Minute
	}
	if r.MaxConcurrentReconciles == 0 {
		r.MaxConcurrentReconciles = 4
	}
	if r.StatusInterval == 0 {
		r.StatusInterval = 30 * time.Second
	}
	if r.Scraper == nil {
		r.Scraper = NewHTTPScraper(2 * time.Second)
	}
	r.listings = newBrokerListings(r.Clock, r.StatusInterval/2)
	if r.NewBrokerClient == nil {
		qps, burst := r.BrokerQPS, r.BrokerBurst
		if qps == 0 {
			qps, burst = 50, 100
		}
		r.NewBrokerClient = broker.NewManagementFactory(qps, burst, brokerRequests).New
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("eventstream-operator")
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &esv1.EventStream{}, secretIndexKey,
		func(o client.Object) []string { return referencedSecrets(o.(*esv1.EventStream)) }); err != nil {
		return fmt.Errorf("index EventStreams by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&esv1.EventStream{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletionPredicate()))).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.streamsReadingSecret)).
		Watches(&esv1.EventStream{}, r.queueHandoff()).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.MaxConcurrentReconciles,
			RateLimiter:             newJitteredBackoff(time.Second, 5*time.Minute, r.Jitter),
		}).
		Named("eventstream").
		Complete(r)
}

// streamsReadingSecret maps a Secret to the EventStreams in its namespace that read it.
func (r *EventStreamReconciler) streamsReadingSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var streams esv1.EventStreamList
	if err := r.List(ctx, &streams, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretIndexKey: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list EventStreams for Secret", "secret", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(streams.Items))
	for _, es := range streams.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&es)})
	}
	return reqs
}

// deletionPredicate passes updates that set a deletion timestamp or change finalizers.
func deletionPredicate() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}
