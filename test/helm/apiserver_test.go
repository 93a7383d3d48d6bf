package helm

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// TestAPIServerAcceptsTheInstalls: a real API server (envtest) accepts every object of the
// chart with all optional values switched on, and of config/default, with strict field
// validation (server-side dry run: a misspelt or misplaced field in a template fails here,
// not at a user's helm install).
func TestAPIServerAcceptsTheInstalls(t *testing.T) {
	assets, err := kubetest.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"evs-system", "team-a", "team-b", "eventstream-system"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}

	chart := renderAll(t, "watchNamespaces={team-a,team-b}", "replicaCount=2", "networkPolicy.enabled=true",
		"networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
		"imagePullSecrets[0].name=registry", "extraArgs={--max-concurrent-reconciles=8}",
		"extraEnv[0].name=OTEL_SERVICE_NAME", "extraEnv[0].value=operator", "priorityClassName=high",
		"topologySpreadConstraints[0].maxSkew=1", "topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
		"topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
		"topologySpreadConstraints[0].labelSelector.matchLabels.app\\.kubernetes\\.io/name=eventstream-operator")
	out, err := exec.Command(kubetest.Kubectl(t), "kustomize", filepath.Join(kubetest.ProjectRoot(), "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	installs := map[string][]*unstructured.Unstructured{"chart": chart, "config/default": parseObjects(t, string(out))}
	for install, objects := range installs {
		if len(objects) < 8 {
			t.Fatalf("%s: only %d objects", install, len(objects))
		}
		for _, obj := range objects {
			if obj.GetKind() == "Namespace" {
				continue
			}
			if err := c.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Errorf("%s: API server refuses %s %s/%s: %v", install, obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			}
		}
	}
}
