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
// status does not change.
func setCondition(es *esv1.EventStream, condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&es.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: message,
		ObservedGeneration: es.Generation,
	})
}

// summarizeReady sets Ready from the dependencies that are present: True when all are True,
// otherwise False with the reasons and messages of those that are not.
func summarizeReady(es *esv1.EventStream) {
	var notReady []string
	for _, t := range readyDependencies {
		c := meta.FindStatusCondition(es.Status.Conditions, t)
		if c == nil {
			continue
		}
		if c.Status != metav1.ConditionTrue {
			notReady = append(notReady, t+": "+c.Reason+": "+c.Message)
		}
	}
	if len(notReady) == 0 {
		setCondition(es, esv1.ConditionReady, metav1.ConditionTrue, esv1.ReasonReady, "the stream is ready")
		return
	}
	setCondition(es, esv1.ConditionReady, metav1.ConditionFalse, esv1.ReasonNotReady, strings.Join(notReady, "; "))
}
