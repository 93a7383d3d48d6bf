package controllers

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

// fieldOwner is the operator's server-side apply field manager: it owns exactly the fields
// the builders set, so fields set by other controllers (an HPA's replicas aside, which the
// operator does own) or admission webhooks are left alone, and hand edits to the operator's
// fields are reverted.
const fieldOwner = client.FieldOwner("eventstream-operator")

// reconcileWorkload applies the bridge's ServiceAccount, Service, Deployment and, with more
// than one replica, PodDisruptionBudget (deleting it otherwise), all owned by the stream. It
// applies nothing when the desired children and the children themselves (their generation or
// resource version, as the cache shows them) are what they were after the stream's last
// apply: a reconcile that only refreshes figures writes nothing, while an edit or deletion of
// a child (whose watch event triggers a reconcile) is repaired at once. It emits Events when
// the Deployment is scaled or its configuration rolls.
func (r *EventStreamReconciler) reconcileWorkload(ctx context.Context, es *esv1.EventStream) error {
	err := r.ensureWorkload(ctx, es)
	if err != nil {
		r.applied.Delete(es.UID)
		se := asStepError(err, esv1.ReasonWorkloadError)
		setCondition(es, esv1.ConditionBridgeReady, metav1.ConditionFalse, se.reason, se.message)
		return se
	}
	return nil
}

func (r *EventStreamReconciler) ensureWorkload(ctx context.Context, es *esv1.EventStream) error {
	desired, err := r.desiredWorkload(ctx, es)
	if err != nil {
		return err
	}
	observed, previous, err := r.observeChildren(ctx, r.Client, es)
	if err != nil {
		return err
	}
	last, known := r.applied.Load(es.UID)
	if known && last.(appliedWorkload).hash == desired.hash && last.(appliedWorkload).children != observed {
		// The cache may not have seen the last apply yet (the children's own watch events
		// trigger reconciles right after it): the API server tells whether a child changed.
		if observed, previous, err = r.observeChildren(ctx, r.apiReader(), es); err != nil {
			return err
		}
	}
	if known && last.(appliedWorkload) == (appliedWorkload{hash: desired.hash, children: observed}) {
		return nil
	}
	applied, err := r.applyWorkload(ctx, es, desired, previous, observed.podDisruptionBudget != "")
	if err != nil {
		return err
	}
	r.applied.Store(es.UID, appliedWorkload{hash: desired.hash, children: applied})
	return nil
}

// observeChildren returns the versions of the stream's children as reader shows them, and
// its Deployment (nil when there is none).
func (r *EventStreamReconciler) observeChildren(ctx context.Context, reader client.Reader, es *esv1.EventStream) (childVersions, *appsv1.Deployment, error) {
	var v childVersions
	meta := childMeta(es)
	key := client.ObjectKey{Namespace: meta.Namespace, Name: meta.Name}
	var previous *appsv1.Deployment
	for _, child := range []struct {
		obj     client.Object
		version *string
	}{
		{&corev1.ServiceAccount{}, &v.serviceAccount},
		{&appsv1.Deployment{}, &v.deployment},
		{&corev1.Service{}, &v.service},
		{&policyv1.PodDisruptionBudget{}, &v.podDisruptionBudget},
	} {
		err := reader.Get(ctx, key, child.obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return v, nil, fmt.Errorf("get %T %s: %w", child.obj, key.Name, err)
		}
		*child.version = childVersion(child.obj)
		if dep, ok := child.obj.(*appsv1.Deployment); ok {
			previous = dep
		}
	}
	return v, previous, nil
}

func (r *EventStreamReconciler) applyWorkload(ctx context.Context, es *esv1.EventStream, desired desiredChildren, previous *appsv1.Deployment, pdbExists bool) (childVersions, error) {
	var applied childVersions
	var err error
	if applied.serviceAccount, err = r.apply(ctx, es, desired.serviceAccount); err != nil {
		return applied, err
	}
	if applied.deployment, err = r.apply(ctx, es, desired.deployment); err != nil {
		return applied, err
	}
	if applied.service, err = r.reconcileService(ctx, es); err != nil {
		return applied, err
	}
	if desired.podDisruptionBudget != nil {
		if applied.podDisruptionBudget, err = r.apply(ctx, es, desired.podDisruptionBudget); err != nil {
			return applied, err
		}
	} else if pdbExists {
		stale := &policyv1.PodDisruptionBudget{ObjectMeta: childMeta(es)}
		if err := r.Delete(ctx, stale); err != nil && !apierrors.IsNotFound(err) {
			return applied, fmt.Errorf("delete PodDisruptionBudget %s: %w", stale.Name, err)
		}
	}

	deployment := desired.deployment
	if previous != nil {
		if old, now := ptrValue(previous.Spec.Replicas), ptrValue(deployment.Spec.Replicas); old != now {
			r.event(es, corev1.EventTypeNormal, "BridgeScaled", "Scale", "bridge scaled from %d to %d replicas", old, now)
		}
		if old, now := previous.Spec.Template.Annotations[ConfigHashAnnotation], deployment.Spec.Template.Annotations[ConfigHashAnnotation]; old != now {
			r.event(es, corev1.EventTypeNormal, "BridgeRollout", "Rollout", "bridge configuration changed (%s → %s): rolling the pods", old, now)
		}
	} else {
		r.event(es, corev1.EventTypeNormal, "BridgeCreated", "Create", "created bridge Deployment %s with %d replica(s)", deployment.Name, ptrValue(deployment.Spec.Replicas))
	}
	return applied, nil
}

// reconcileService creates or patches the bridge Service. Server-side apply cannot repair a
// hand-edited port (Service ports merge by port number, so an edited port becomes a second
// entry with the same name); the operator therefore sets type, selector and the whole port
// list itself, keeps the cluster IPs and node ports the API server assigned, and adds its
// annotations to any others.
func (r *EventStreamReconciler) reconcileService(ctx context.Context, es *esv1.EventStream) (string, error) {
	want := buildService(es)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	_, err := controllerutil.CreateOrPatch(ctx, r.Client, svc, func() error {
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		maps.Copy(svc.Labels, want.Labels)
		if len(want.Annotations) > 0 && svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		maps.Copy(svc.Annotations, want.Annotations)
		svc.Spec.Type = want.Spec.Type
		svc.Spec.Selector = want.Spec.Selector
		ports := want.Spec.Ports
		for i := range ports {
			for _, old := range svc.Spec.Ports {
				if old.Name == ports[i].Name && want.Spec.Type != corev1.ServiceTypeClusterIP {
					ports[i].NodePort = old.NodePort
				}
			}
		}
		svc.Spec.Ports = ports
		return controllerutil.SetControllerReference(es, svc, r.Scheme())
	})
	if err != nil {
		return "", fmt.Errorf("reconcile Service %s: %w", want.Name, err)
	}
	return childVersion(svc), nil
}

// apply server-side applies obj, owned by es, with the operator's field manager, and returns
// the applied object's version (childVersion).
func (r *EventStreamReconciler) apply(ctx context.Context, es *esv1.EventStream, obj client.Object) (string, error) {
	if err := controllerutil.SetControllerReference(es, obj, r.Scheme()); err != nil {
		return "", fmt.Errorf("owner reference on %s: %w", obj.GetName(), err)
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return "", fmt.Errorf("convert %s: %w", obj.GetName(), err)
	}
	// Zero values of typed objects would claim fields the operator does not mean to own.
	delete(content, "status")
	unstructured.RemoveNestedField(content, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(content, "spec", "template", "metadata", "creationTimestamp")
	u := &unstructured.Unstructured{Object: content}
	kind := u.GetKind()
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership); err != nil {
		return "", fmt.Errorf("apply %s %s: %w", kind, u.GetName(), err)
	}
	if kind == "Deployment" {
		return string(u.GetUID()) + "/" + strconv.FormatInt(u.GetGeneration(), 10), nil
	}
	return string(u.GetUID()) + "/" + u.GetResourceVersion(), nil
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
