// Package upgrade proves the CRD upgrade step of docs/upgrade.md on a real API server: the
// CRD of release 0.1.0 (testdata, as published) is replaced by the working tree's with
// `kubectl apply --server-side`, as the doc says, and the streams stored under the old one stay
// served, with the new fields.
package upgrade

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

const crdName = "eventstreams.sse.eventstream.dev"

func TestCRDUpgradeFromTheFirstRelease(t *testing.T) {
	assets, err := kubetest.AssetsDir()
	if err != nil {
		if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skipf("needs the envtest API server: %v", err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("testdata", "eventstreams-crd-0.1.0.yaml")},
		ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := esv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A stream as users wrote them for 0.1.0: no auth at all (the old default was none).
	old := stream(t, "written-for-0-1-0", "{}")
	if err := c.Create(ctx, old); err != nil {
		t.Fatalf("the 0.1.0 CRD refuses a 0.1.0 manifest: %v", err)
	}

	// The upgrade step of docs/upgrade.md, with the real kubectl.
	crdFile := filepath.Join(kubetest.ProjectRoot(), "charts", "eventstream-operator", "crds", "sse.eventstream.dev_eventstreams.yaml")
	if _, stderr, err := env.ControlPlane.KubeCtl().Run("apply", "--server-side", "--force-conflicts", "-f", crdFile); err != nil {
		msg, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl apply --server-side of the new CRD: %v: %s", err, msg)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: crdName}, &crd); err != nil {
			t.Fatal(err)
		}
		if established(&crd) && strings.Contains(string(mustJSON(t, crd.Spec.Versions[0].Schema)), "maxConnectionsPerSubject") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new CRD was not served within 30s")
		}
		time.Sleep(100 * time.Millisecond) // polling the API server's CRD status
	}

	// The stored stream is served by the new CRD: what it stored (mode none) is kept, and the
	// new fields come with their defaults.
	var got esv1.EventStream
	deadline = time.Now().Add(30 * time.Second)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(old), &got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.Bridge.Limits.MaxConnectionsPerSubject != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the API server's schema cache follows the CRD
	}
	if got.Spec.Bridge.Auth.Mode != esv1.AuthModeNone {
		t.Errorf("the stored stream's auth mode became %q; upgrading must not change what it stored", got.Spec.Bridge.Auth.Mode)
	}
	if got.Spec.Bridge.Limits.MaxConnectionsPerSubject != 100 {
		t.Errorf("limits.maxConnectionsPerSubject of the stored stream = %d, want the new default 100", got.Spec.Bridge.Limits.MaxConnectionsPerSubject)
	}

	// A new field can be written on it (the old CRD pruned unknown fields).
	got.Spec.Bridge.Limits.MaxConnectionsPerSubject = 7
	if err := c.Update(ctx, &got); err != nil {
		t.Fatalf("updating the stored stream under the new CRD: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(old), &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Bridge.Limits.MaxConnectionsPerSubject != 7 {
		t.Errorf("the new field was not kept: %d", got.Spec.Bridge.Limits.MaxConnectionsPerSubject)
	}

	// The old manifest applied anew is refused with the message that shows the ways out.
	err = c.Create(ctx, stream(t, "written-for-0-1-0-again", "{}"))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "or write bridge.auth.mode: none") {
		t.Fatalf("a 0.1.0 manifest without auth under the new CRD: %v; want the secure-default refusal", err)
	}
}

// stream is an EventStream in namespace default with the given spec.bridge (YAML flow).
func stream(t *testing.T, name, bridge string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	doc := "apiVersion: sse.eventstream.dev/v1alpha1\nkind: EventStream\nmetadata: {name: " + name + ", namespace: default}\n" +
		"spec:\n  rabbitmq: {connectionSecret: {name: rabbitmq}}\n  bridge: " + bridge + "\n"
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
