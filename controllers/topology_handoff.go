package controllers

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

// queueHandoff enqueues, when an EventStream is gone (its finalizer has run, so a queue it
// owned is released), the streams waiting for that queue, so that one of them takes it over
// at once instead of at its next resync. Streams on other brokers with the same queue name
// are enqueued too; they re-check once and stay as they were.
func (r *EventStreamReconciler) queueHandoff() handler.Funcs {
	return handler.Funcs{
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			gone, ok := e.Object.(*esv1.EventStream)
			if !ok {
				return
			}
			var all esv1.EventStreamList
			if err := r.List(ctx, &all); err != nil {
				log.FromContext(ctx).Error(err, "list EventStreams waiting for a released queue", "queue", desiredTopology(gone).Queue)
				return
			}
			for _, req := range streamsWaitingFor(gone, all.Items) {
				q.Add(req)
			}
		},
	}
}

// streamsWaitingFor returns the streams, other than gone, that report QueueClaimed on a
// queue overlapping gone's queue.
func streamsWaitingFor(gone *esv1.EventStream, streams []esv1.EventStream) []reconcile.Request {
	released := overlappingQueues(desiredTopology(gone).Queue)
	var reqs []reconcile.Request
	for i := range streams {
		es := &streams[i]
		if es.UID == gone.UID {
			continue
		}
		c := meta.FindStatusCondition(es.Status.Conditions, esv1.ConditionTopologyReady)
		if c == nil || c.Reason != esv1.ReasonQueueClaimed || !slices.Contains(released, desiredTopology(es).Queue) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(es)})
	}
	return reqs
}
