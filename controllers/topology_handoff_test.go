package controllers

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

func TestStreamsWaitingFor(t *testing.T) {
	stream := func(namespace, queue, reason string) esv1.EventStream {
		es := esv1.EventStream{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "stream", UID: types.UID(namespace)},
			Spec:       esv1.EventStreamSpec{Queue: esv1.QueueSpec{Name: esv1.BrokerObjectName(queue)}},
		}
		if reason != "" {
			es.Status.Conditions = []metav1.Condition{{Type: esv1.ConditionTopologyReady, Status: metav1.ConditionFalse, Reason: reason}}
		}
		return es
	}
	gone := stream("owner", "jobs", "")
	streams := []esv1.EventStream{
		gone,
		stream("waiting", "jobs", esv1.ReasonQueueClaimed),
		stream("waiting-on-its-dlq", "jobs.dlq", esv1.ReasonQueueClaimed),
		stream("ready", "jobs", ""),
		stream("other-failure", "jobs", esv1.ReasonBrokerUnreachable),
		stream("other-queue", "events.sse", esv1.ReasonQueueClaimed),
	}
	got := streamsWaitingFor(&gone, streams)
	want := []reconcile.Request{
		{NamespacedName: types.NamespacedName{Namespace: "waiting", Name: "stream"}},
		{NamespacedName: types.NamespacedName{Namespace: "waiting-on-its-dlq", Name: "stream"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("streamsWaitingFor = %v, want %v", got, want)
	}
}
