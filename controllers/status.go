package controllers

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
)

// scrapeConcurrency bounds the bridge pods scraped at once for one stream.
const scrapeConcurrency = 8

// reconcileBridgeStatus sets BridgeReady from the bridge Deployment and status.bridge from
// the Deployment and the metrics of its running pods. A pod that cannot be scraped is listed in
// status.bridge.unscrapedPods; it does not fail the step.
func (r *EventStreamReconciler) reconcileBridgeStatus(ctx context.Context, es *esv1.EventStream) error {
	var dep appsv1.Deployment
	err := r.Get(ctx, client.ObjectKey{Namespace: es.Namespace, Name: bridgeName(es)}, &dep)
	if apierrors.IsNotFound(err) {
		setCondition(es, esv1.ConditionBridgeReady, metav1.ConditionFalse, esv1.ReasonBridgeProgressing, "the bridge Deployment is being created")
		return nil
	}
	if err != nil {
		return fmt.Errorf("get bridge Deployment: %w", err)
	}
	desired := replicas(es)
	status, reason, message := bridgeCondition(&dep, desired)
	setCondition(es, esv1.ConditionBridgeReady, status, reason, message)

	figures, unscraped, err := r.scrapeBridgePods(ctx, es)
	if err != nil {
		return err
	}
	es.Status.Bridge = &esv1.BridgeStatus{
		Replicas:      desired,
		ReadyReplicas: dep.Status.ReadyReplicas,
		ReplicasText:  strconv.Itoa(int(dep.Status.ReadyReplicas)) + "/" + strconv.Itoa(int(desired)),
		Clients:       figures.Clients,
		Delivered:     figures.Delivered,
		Dropped:       figures.Dropped,
		Reconnects:    figures.Reconnects,
		LagMessages:   figures.LagMessages,
		SnapshotKeys:  figures.SnapshotKeys,
		SnapshotBytes: figures.SnapshotBytes,
		Endpoint:      bridgeEndpoint(es),
		UnscrapedPods: unscraped,
	}
	return nil
}

// bridgeCondition is BridgeReady for a Deployment that should have desired replicas: True
// when the current template is rolled out and enough replicas are ready.
func bridgeCondition(dep *appsv1.Deployment, desired int32) (metav1.ConditionStatus, string, string) {
	st := dep.Status
	switch {
	case dep.Generation != st.ObservedGeneration || st.UpdatedReplicas < desired || st.Replicas > desired:
		return metav1.ConditionFalse, esv1.ReasonBridgeProgressing,
			fmt.Sprintf("rolling out: %d of %d replicas updated, %d ready", st.UpdatedReplicas, desired, st.ReadyReplicas)
	case st.AvailableReplicas < desired:
		return metav1.ConditionFalse, esv1.ReasonBridgeUnavailable,
			fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, desired)
	default:
		return metav1.ConditionTrue, esv1.ReasonBridgeAvailable, fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, desired)
	}
}

// scrapeBridgePods sums the figures of the stream's running bridge pods, scraped in parallel
// (at most scrapeConcurrency at once), and names the pods that could not be scraped. The
// consumer lag and the snapshot size are the largest of the pods' (each stream replica reads
// the whole stream and keeps its own snapshot store).
func (r *EventStreamReconciler) scrapeBridgePods(ctx context.Context, es *esv1.EventStream) (BridgeFigures, []string, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(es.Namespace), client.MatchingLabels(bridgeSelector(es))); err != nil {
		return BridgeFigures{}, nil, fmt.Errorf("list bridge pods: %w", err)
	}
	type result struct {
		pod     string
		figures BridgeFigures
		err     error
	}
	var (
		results []result
		mu      sync.Mutex
		wg      sync.WaitGroup
		slots   = make(chan struct{}, scrapeConcurrency)
	)
	for i := range pods.Items {
		pod := &pods.Items[i]
		url, ok := metricsURL(pod)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			figures, err := r.Scraper.Scrape(ctx, url)
			mu.Lock()
			results = append(results, result{pod: pod.Name, figures: figures, err: err})
			mu.Unlock()
		}()
	}
	wg.Wait()

	var total BridgeFigures
	var unscraped []string
	for _, res := range results {
		if res.err != nil {
			unscraped = append(unscraped, res.pod)
			continue
		}
		total.Clients += res.figures.Clients
		total.Delivered += res.figures.Delivered
		total.Dropped += res.figures.Dropped
		total.Reconnects += res.figures.Reconnects
		total.LagMessages = max(total.LagMessages, res.figures.LagMessages)
		// Each replica holds a snapshot store of its own (the same one on a stream queue).
		total.SnapshotKeys = max(total.SnapshotKeys, res.figures.SnapshotKeys)
		total.SnapshotBytes = max(total.SnapshotBytes, res.figures.SnapshotBytes)
	}
	sort.Strings(unscraped)
	return total, unscraped, nil
}

// metricsURL is the /metrics URL of a running pod with an IP and a port named
// BridgeMetricsPortName. Readiness is not required: a bridge is not ready while its broker
// is away, yet its clients stay connected and its reconnects are exactly what status must
// show then.
func metricsURL(pod *corev1.Pod) (string, bool) {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" || !pod.DeletionTimestamp.IsZero() {
		return "", false
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == BridgeMetricsPortName {
				return "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(p.ContainerPort))) + "/metrics", true
			}
		}
	}
	return "", false
}

// statusRequeue is when to look again: the status interval, jittered.
func (r *EventStreamReconciler) statusRequeue() time.Duration {
	return r.Jitter(min(r.StatusInterval, r.ResyncPeriod))
}
