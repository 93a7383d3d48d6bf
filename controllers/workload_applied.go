package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

// desiredChildren are the bridge children built from a stream, and a hash of all of them.
type desiredChildren struct {
	serviceAccount      *corev1.ServiceAccount
	deployment          *appsv1.Deployment
	podDisruptionBudget *policyv1.PodDisruptionBudget // nil: there must be none
	hash                string
}

// childVersions identify the state of a stream's children: each is the child's UID with its
// generation (Deployment: its status changes are not the operator's business) or resource
// version (the others, which have no generation); empty for a child that does not exist.
type childVersions struct {
	serviceAccount, deployment, service, podDisruptionBudget string
}

// appliedWorkload is what a stream's children were applied from and what they were after.
type appliedWorkload struct {
	hash     string
	children childVersions
}

func childVersion(obj client.Object) string {
	if _, ok := obj.(*appsv1.Deployment); ok {
		return string(obj.GetUID()) + "/" + strconv.FormatInt(obj.GetGeneration(), 10)
	}
	return string(obj.GetUID()) + "/" + obj.GetResourceVersion()
}

// desiredWorkload builds the stream's children (reading the Secrets the bridge uses, for
// their digests) and hashes them together with the Service the operator wants.
func (r *EventStreamReconciler) desiredWorkload(ctx context.Context, es *esv1.EventStream) (desiredChildren, error) {
	digests := map[string]string{}
	for _, name := range referencedSecrets(es) {
		secret, err := r.secret(ctx, es.Namespace, name)
		if err != nil {
			return desiredChildren{}, err
		}
		digests[name] = secretDigest(secret.Data)
	}
	d := desiredChildren{
		serviceAccount:      buildServiceAccount(es, r.BridgeImagePullSecrets),
		deployment:          buildDeployment(workloadInput{Stream: es, DefaultImage: r.BridgeImage, SecretDigests: digests}),
		podDisruptionBudget: buildPodDisruptionBudget(es),
	}
	content, err := json.Marshal([]any{d.serviceAccount, d.deployment, buildService(es), d.podDisruptionBudget})
	if err != nil {
		return desiredChildren{}, fmt.Errorf("hash bridge children: %w", err)
	}
	sum := sha256.Sum256(content)
	d.hash = hex.EncodeToString(sum[:])
	return d, nil
}

// apiReader reads from the API server, bypassing the cache; the client itself when no reader
// was set (unit tests, whose fake client has no cache).
func (r *EventStreamReconciler) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}
