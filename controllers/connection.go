package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// Keys of the connection Secret.
const (
	secretKeyURI           = "uri"
	secretKeyManagementURI = "managementURI"
)

// brokerConnection reads the stream's connection Secret (and TLS CA Secret) and returns
// where and how to reach the management API. A missing Secret is a waiting error with reason
// SecretNotFound; an unusable one is stalled with SecretInvalid.
func (r *EventStreamReconciler) brokerConnection(ctx context.Context, es *esv1.EventStream) (broker.Connection, error) {
	name := es.Spec.RabbitMQ.ConnectionSecret.Name
	secret, err := r.secret(ctx, es.Namespace, name)
	if err != nil {
		return broker.Connection{}, err
	}
	uri := string(secret.Data[secretKeyURI])
	if uri == "" {
		return broker.Connection{}, newStepError(stalled, esv1.ReasonSecretInvalid, nil,
			"Secret %s has no %q key", name, secretKeyURI)
	}
	conn, err := broker.ConnectionFromURIs(uri, string(secret.Data[secretKeyManagementURI]))
	if err != nil {
		return broker.Connection{}, newStepError(stalled, esv1.ReasonSecretInvalid, nil,
			"Secret %s: %v", name, err)
	}
	// The Secret is written for the stream's namespace: a Service name there, like `rabbitmq`.
	conn.ManagementURL = broker.QualifyServiceHost(conn.ManagementURL, es.Namespace)
	if tls := es.Spec.RabbitMQ.TLS; tls != nil {
		caSecret, err := r.secret(ctx, es.Namespace, tls.CASecret.Name)
		if err != nil {
			return broker.Connection{}, err
		}
		key := tls.CASecret.Key
		if key == "" {
			key = esv1.DefaultCAKey
		}
		conn.CAPEM = caSecret.Data[key]
		if len(conn.CAPEM) == 0 {
			return broker.Connection{}, newStepError(stalled, esv1.ReasonSecretInvalid, nil,
				"Secret %s has no %q key", tls.CASecret.Name, key)
		}
	}
	return conn, nil
}

func (r *EventStreamReconciler) secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		return nil, newStepError(waiting, esv1.ReasonSecretNotFound, err, "Secret %s/%s not found", namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get Secret %s/%s: %w", namespace, name, err)
	}
	return secret, nil
}

// brokerClient returns a client for the stream's broker and the connection it was made for;
// errors are step errors.
func (r *EventStreamReconciler) brokerClient(ctx context.Context, es *esv1.EventStream) (broker.Client, broker.Connection, error) {
	conn, err := r.brokerConnection(ctx, es)
	if err != nil {
		return nil, conn, err
	}
	bc, err := r.NewBrokerClient(conn)
	if err != nil {
		return nil, conn, newStepError(stalled, esv1.ReasonSecretInvalid, nil, "%v", err)
	}
	return bc, conn, nil
}
