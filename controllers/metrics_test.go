package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// TestReconcileErrorsCountStepReason: every failed reconcile step counts once under the
// condition reason it reported; an error that is no step error counts as WorkloadError.
func TestReconcileErrorsCountStepReason(t *testing.T) {
	r := &EventStreamReconciler{Clock: clock.RealClock{}, Jitter: func(d time.Duration) time.Duration { return d }}
	es := &esv1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}}
	for _, tt := range []struct {
		err    error
		reason string
	}{
		{brokerStepError(fmt.Errorf("dial: %w", broker.ErrUnreachable), "get queue"), esv1.ReasonBrokerUnreachable},
		{newStepError(stalled, esv1.ReasonQueueClaimed, nil, "queue q belongs to another stream"), esv1.ReasonQueueClaimed},
		{errors.New("create deployment: boom"), esv1.ReasonWorkloadError},
	} {
		before := testutil.ToFloat64(reconcileErrors.WithLabelValues(tt.reason))
		_, _ = r.afterFailure(context.Background(), es.DeepCopy(), es, tt.err)
		if got := testutil.ToFloat64(reconcileErrors.WithLabelValues(tt.reason)) - before; got != 1 {
			t.Errorf("%v: %s{reason=%q} grew by %v, want 1", tt.err, MetricReconcileErrors, tt.reason, got)
		}
	}
}
