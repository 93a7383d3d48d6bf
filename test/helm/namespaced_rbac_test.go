package helm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// TestOperatorRunsWithNamespacedRBAC: the real operator binary, authenticated as the chart's
// ServiceAccount and holding only the Roles the chart renders for watchNamespaces (no
// ClusterRole), starts, wins its Lease, and reconciles an EventStream in a watched namespace
// (finalizer and status conditions; the broker is unreachable, which is enough), while a
// stream in another namespace stays untouched and no request is forbidden.
func TestOperatorRunsWithNamespacedRBAC(t *testing.T) {
	assets, err := kubetest.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, CRDDirectoryPaths: []string{kubetest.CRDDir()}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"evs-system", "team-a", "team-b", "other"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	granted := 0
	for _, obj := range renderAll(t, "watchNamespaces={team-a,team-b}") {
		switch obj.GetKind() {
		case "ClusterRole", "ClusterRoleBinding":
			if strings.HasSuffix(obj.GetName(), "-view") || strings.HasSuffix(obj.GetName(), "-edit") {
				continue // for users, not for the operator
			}
			t.Fatalf("watchNamespaces set, yet the chart renders %s %s", obj.GetKind(), obj.GetName())
		case "Role", "RoleBinding", "ServiceAccount":
			if err := admin.Create(ctx, obj); err != nil {
				t.Fatalf("create %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			}
			granted++
		}
	}
	if granted != 7 { // ServiceAccount, Role+RoleBinding in team-a, team-b and for leader election
		t.Fatalf("created %d RBAC objects, want 7", granted)
	}

	user, err := env.AddUser(envtest.User{
		Name:   "system:serviceaccount:evs-system:evs-eventstream-operator",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:evs-system", "system:authenticated"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, ns := range []string{"team-a", "other"} {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rabbitmq", Namespace: ns},
			StringData: map[string]string{"uri": "amqp://guest:guest@127.0.0.1:1/"}}
		if err := admin.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if err := admin.Create(ctx, eventStream(ns)); err != nil {
			t.Fatalf("create EventStream in %s: %v", ns, err)
		}
	}

	bin := clitest.Build(t, "github.com/eventstream-operator/eventstream-operator/cmd/operator", clitest.Version())
	var output clitest.Output
	operator := exec.Command(bin, "--kubeconfig="+kubeconfigPath, "--watch-namespaces=team-a,team-b",
		"--leader-elect=true", "--leader-election-namespace=evs-system",
		"--metrics-bind-address=0", "--health-probe-bind-address=0")
	operator.Stdout, operator.Stderr = &output, &output
	if err := operator.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = operator.Process.Kill(); _ = operator.Wait() })

	reconciled := func(ns string) (bool, string) {
		es := eventStream(ns)
		if err := admin.Get(ctx, client.ObjectKeyFromObject(es), es); err != nil {
			t.Fatal(err)
		}
		conditions, _, _ := unstructured.NestedSlice(es.Object, "status", "conditions")
		return len(es.GetFinalizers()) > 0 && len(conditions) > 0, strings.Join(es.GetFinalizers(), ",")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for done, _ := reconciled("team-a"); !done; done, _ = reconciled("team-a") {
		if time.Now().After(deadline) {
			t.Fatalf("the EventStream in team-a got no finalizer and conditions within 2m; operator output:\n%s", output.String())
		}
		if operator.ProcessState != nil {
			t.Fatalf("operator exited: %s", output.String())
		}
		time.Sleep(250 * time.Millisecond) // polling the API server, not synchronising
	}
	if done, finalizers := reconciled("other"); done || finalizers != "" {
		t.Errorf("the EventStream in the unwatched namespace was touched (finalizers %q)", finalizers)
	}
	if strings.Contains(output.String(), "forbidden") {
		t.Errorf("the operator was refused a request:\n%s", output.String())
	}
}

func eventStream(namespace string) *unstructured.Unstructured {
	es := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sse.eventstream.dev/v1alpha1",
		"kind":       "EventStream",
		"metadata":   map[string]any{"name": "jobs", "namespace": namespace},
		"spec": map[string]any{
			"rabbitmq": map[string]any{"connectionSecret": map[string]any{"name": "rabbitmq"}},
			"bridge":   map[string]any{"auth": map[string]any{"mode": "none"}},
		},
	}}
	return es
}
