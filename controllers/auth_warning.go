package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

// insecureAuthMessage is the InsecureAuth condition's and event's message.
const insecureAuthMessage = "bridge.auth.mode is none: anyone who reaches the bridge Service reads every tenant's events; use auth.mode jwt outside development"

// reconcileAuthWarning sets the InsecureAuth condition while the stream's bridge runs without
// authentication and removes it otherwise. It emits a Warning event when the condition
// appears, not on every reconcile: the status read from the cache can lag behind the
// reconcile that set it, so the warning is also remembered per stream. It never fails and does
// not affect Ready: the API server already refuses mode none on a NodePort or LoadBalancer
// Service.
func (r *EventStreamReconciler) reconcileAuthWarning(es *esv1.EventStream) {
	if es.Spec.Bridge.Auth.Mode != esv1.AuthModeNone {
		r.insecureWarned.Delete(es.UID)
		meta.RemoveStatusCondition(&es.Status.Conditions, esv1.ConditionInsecureAuth)
		return
	}
	_, warned := r.insecureWarned.LoadOrStore(es.UID, struct{}{})
	if !warned && !meta.IsStatusConditionTrue(es.Status.Conditions, esv1.ConditionInsecureAuth) {
		r.event(es, corev1.EventTypeWarning, esv1.ConditionInsecureAuth, "Reconcile", insecureAuthMessage)
	}
	setCondition(es, esv1.ConditionInsecureAuth, metav1.ConditionTrue, esv1.ReasonAuthModeNone, insecureAuthMessage)
}
