package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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

// TestReconcileErrorReasonsAreListed: every reason a step error is made with in the
// controllers' sources (newStepError, asStepError) is in reconcileErrorReasons, so its series
// is exported at 0 before the first failure.
func TestReconcileErrorReasonsAreListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`(?:newStepError\([a-z]+|asStepError\([^,]+), esv1\.(Reason[A-Za-z]+)`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllSubmatch(src, -1) {
			seen++
			reason := reasonValues[string(m[1])]
			if reason == "" {
				t.Errorf("%s: unknown reason constant %s: add it to reasonValues", f, m[1])
				continue
			}
			if !slices.Contains(reconcileErrorReasons, reason) {
				t.Errorf("%s: steps fail with %s, which reconcileErrorReasons does not list", f, reason)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found only %d step errors in the sources; the pattern no longer matches how they are made", seen)
	}
	for _, reason := range reconcileErrorReasons {
		if _, err := reconcileErrors.GetMetricWithLabelValues(reason); err != nil {
			t.Error(err)
		}
	}
}

// reasonValues maps the condition reason constants step errors use to their values.
var reasonValues = map[string]string{
	"ReasonSecretNotFound":         esv1.ReasonSecretNotFound,
	"ReasonSecretInvalid":          esv1.ReasonSecretInvalid,
	"ReasonBrokerUnreachable":      esv1.ReasonBrokerUnreachable,
	"ReasonBrokerError":            esv1.ReasonBrokerError,
	"ReasonQueueArgumentsConflict": esv1.ReasonQueueArgumentsConflict,
	"ReasonQueueClaimed":           esv1.ReasonQueueClaimed,
	"ReasonWorkloadError":          esv1.ReasonWorkloadError,
	"ReasonPolicyConflict":         esv1.ReasonPolicyConflict,
	"ReasonForeignPolicyDisplaced": esv1.ReasonForeignPolicyDisplaced,
}
