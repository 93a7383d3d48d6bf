package controllers

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

// readyDependencies are the conditions Ready summarises.
var readyDependencies = []string{esv1.ConditionTopologyReady, esv1.ConditionBridgeReady}

// setCondition sets a condition on the stream's status, keeping its transition time when the
// status does not change. It reports whether the status, reason or message changed.
func setCondition(es *esv1.EventStream, condType string, status metav1.ConditionStatus, reason, message string) bool {
	return meta.SetStatusCondition(&es.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: message,
		ObservedGeneration: es.Generation,
	})
}

// summarizeReady sets Ready from the dependencies that are present: True when all are True,
// otherwise False with the reason of the first one that is not True (so that
// `kubectl get evs -o wide` shows it) and the reasons and messages of all of them.
func summarizeReady(es *esv1.EventStream) {
	var notReady []string
	reason := ""
	for _, t := range readyDependencies {
		c := meta.FindStatusCondition(es.Status.Conditions, t)
		if c == nil {
			continue
		}
		if c.Status != metav1.ConditionTrue {
			notReady = append(notReady, t+": "+c.Reason+": "+c.Message)
			if reason == "" {
				reason = c.Reason
			}
		}
	}
	if len(notReady) == 0 {
		setCondition(es, esv1.ConditionReady, metav1.ConditionTrue, esv1.ReasonReady, "the stream is ready")
		return
	}
	if reason == "" {
		reason = esv1.ReasonNotReady
	}
	setCondition(es, esv1.ConditionReady, metav1.ConditionFalse, reason, strings.Join(notReady, "; "))
}

// setProgress sets the kstatus conditions from the outcome of a reconcile: failed is the
// step error that stopped it (nil when every step succeeded). A stalled error is Stalled; any
// other failure, and a success whose bridge is not yet ready, is Reconciling; a ready stream
// has neither.
func setProgress(es *esv1.EventStream, failed *stepError) {
	switch {
	case failed != nil && failed.kind == stalled:
		meta.RemoveStatusCondition(&es.Status.Conditions, esv1.ConditionReconciling)
		setCondition(es, esv1.ConditionStalled, metav1.ConditionTrue, failed.reason, failed.message)
		return
	case failed != nil:
		meta.RemoveStatusCondition(&es.Status.Conditions, esv1.ConditionStalled)
		setCondition(es, esv1.ConditionReconciling, metav1.ConditionTrue, failed.reason, failed.message)
		return
	}
	meta.RemoveStatusCondition(&es.Status.Conditions, esv1.ConditionStalled)
	if c := meta.FindStatusCondition(es.Status.Conditions, esv1.ConditionBridgeReady); c != nil && c.Status != metav1.ConditionTrue {
		setCondition(es, esv1.ConditionReconciling, metav1.ConditionTrue, c.Reason, c.Message)
		return
	}
	meta.RemoveStatusCondition(&es.Status.Conditions, esv1.ConditionReconciling)
}
