package controllers

import (
	"errors"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// TestBrokerStepErrorKinds: how a broker answer decides retrying. A 4xx repeats until a human
// acts (stalled, no hot retry); an unreachable broker or a 5xx is retried with backoff.
func TestBrokerStepErrorKinds(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		kind   errorKind
		reason string
	}{
		{"unreachable", fmt.Errorf("dial: %w", broker.ErrUnreachable), transient, esv1.ReasonBrokerUnreachable},
		{"400 precondition", &broker.BrokerError{Operation: "declare queue", StatusCode: 400, Message: "inequivalent arg"}, stalled, esv1.ReasonBrokerError},
		{"405 method", &broker.BrokerError{Operation: "declare exchange", StatusCode: 405}, stalled, esv1.ReasonBrokerError},
		{"no status (undecodable answer)", &broker.BrokerError{Operation: "list queues", Message: "invalid character"}, transient, esv1.ReasonBrokerError},
		{"other error", errors.New("boom"), transient, esv1.ReasonBrokerError},
	} {
		se := asStepError(brokerStepError(tt.err, "op"), "")
		if se.kind != tt.kind || se.reason != tt.reason {
			t.Errorf("%s: kind %v reason %s, want %v %s", tt.name, se.kind, se.reason, tt.kind, tt.reason)
		}
	}
}

// TestSetProgress: at most one of Reconciling and Stalled, neither for a ready stream.
func TestSetProgress(t *testing.T) {
	bridge := func(status metav1.ConditionStatus) *esv1.EventStream {
		es := &esv1.EventStream{}
		setCondition(es, esv1.ConditionBridgeReady, status, esv1.ReasonBridgeProgressing, "rolling out")
		return es
	}
	for _, tt := range []struct {
		name        string
		es          *esv1.EventStream
		failed      *stepError
		reconciling metav1.ConditionStatus // "" for absent
		stalled     metav1.ConditionStatus
		reason      string
	}{
		{"ready", bridge(metav1.ConditionTrue), nil, "", "", ""},
		{"bridge rolling out", bridge(metav1.ConditionFalse), nil, metav1.ConditionTrue, "", esv1.ReasonBridgeProgressing},
		{"waiting for a Secret", bridge(metav1.ConditionTrue), newStepError(waiting, esv1.ReasonSecretNotFound, nil, "no Secret"), metav1.ConditionTrue, "", esv1.ReasonSecretNotFound},
		{"transient", bridge(metav1.ConditionTrue), newStepError(transient, esv1.ReasonBrokerUnreachable, nil, "down"), metav1.ConditionTrue, "", esv1.ReasonBrokerUnreachable},
		{"stalled", bridge(metav1.ConditionTrue), newStepError(stalled, esv1.ReasonQueueArgumentsConflict, nil, "x-queue-type"), "", metav1.ConditionTrue, esv1.ReasonQueueArgumentsConflict},
	} {
		// From the opposite state, so that a stale condition has to be removed.
		setCondition(tt.es, esv1.ConditionStalled, metav1.ConditionTrue, "Old", "old")
		setCondition(tt.es, esv1.ConditionReconciling, metav1.ConditionTrue, "Old", "old")
		setProgress(tt.es, tt.failed)
		for _, c := range []struct {
			condType string
			want     metav1.ConditionStatus
		}{{esv1.ConditionReconciling, tt.reconciling}, {esv1.ConditionStalled, tt.stalled}} {
			got := meta.FindStatusCondition(tt.es.Status.Conditions, c.condType)
			switch {
			case c.want == "" && got != nil:
				t.Errorf("%s: %s present (%s), want absent", tt.name, c.condType, got.Reason)
			case c.want != "" && (got == nil || got.Status != c.want || got.Reason != tt.reason):
				t.Errorf("%s: %s = %+v, want %s with reason %s", tt.name, c.condType, got, c.want, tt.reason)
			}
		}
	}
}
