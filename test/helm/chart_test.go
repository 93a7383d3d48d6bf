// Package helm tests the Helm chart: helm lint and helm template with the pinned helm, and
// the rendered objects against the generated CRD and RBAC; and the kustomize install
// (config/default, make dist) against the same generated files and the chart's defaults.
package helm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

var chartDir = filepath.Join(kubetest.ProjectRoot(), "charts", "eventstream-operator")

func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubetest.Helm(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.String()
}

// render returns the rendered objects by kind/name (the last one wins when several
// namespaces hold the same name: use renderAll for those).
func render(t *testing.T, sets ...string) map[string]*unstructured.Unstructured {
	t.Helper()
	objects := map[string]*unstructured.Unstructured{}
	for _, obj := range renderAll(t, sets...) {
		objects[obj.GetKind()+"/"+obj.GetName()] = obj
	}
	return objects
}

// renderAll returns every object helm template renders with the given --set values.
func renderAll(t *testing.T, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "evs", chartDir, "--namespace", "evs-system", "--include-crds"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return parseObjects(t, helm(t, args...))
}

// parseObjects parses a multi-document YAML stream, skipping empty documents.
func parseObjects(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var objects []*unstructured.Unstructured
	for _, doc := range strings.Split(stream, "\n---") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if obj.Object != nil {
			objects = append(objects, obj)
		}
	}
	return objects
}

// generatedRules returns the rules of the generated config/rbac/role.yaml.
func generatedRules(t *testing.T) any {
	t.Helper()
	roleYAML, err := os.ReadFile(filepath.Join(kubetest.ProjectRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generatedRole map[string]any
	if err := yaml.Unmarshal(roleYAML, &generatedRole); err != nil {
		t.Fatal(err)
	}
	return generatedRole["rules"]
}

func TestLint(t *testing.T) {
	out := helm(t, "lint", "--strict", chartDir)
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Fatalf("helm lint:\n%s", out)
	}
}

// TestValuesSchemaRefusesTyposAndWrongTypes: values.schema.json makes helm refuse a misspelt
// or mistyped value instead of silently ignoring it; every value of values.yaml and of the
// monitoring switches is accepted.
func TestValuesSchemaRefusesTyposAndWrongTypes(t *testing.T) {
	for _, set := range []string{
		"replicaCont=2", "brokerQPS=fast", "logLevel=verbose", "resyncPeriod=often",
		"image.pullPolcy=Always", "monitoring.podMonitor.enable=true", "watchNamespaces[0]=Not_A_Namespace",
		"imagePullSecret[0].name=registry", "imagePullSecrets[0].nme=registry", "extraArgs=--flag",
		"networkPolicy.enable=true", "podDisruptionBudget.maxUnavailable=half", "priorityClassName[0]=x",
		"rbac.aggregatedRole=false", "maxConcurrentReconciles=0", "maxConcurrentReconciles=many",
	} {
		cmd := exec.Command(kubetest.Helm(t), "template", "evs", chartDir, "--set", set)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("helm template --set %s was accepted", set)
			continue
		}
		if !strings.Contains(string(out), "schema") && !strings.Contains(string(out), "additional properties") {
			t.Errorf("helm template --set %s failed without naming the schema: %s", set, out)
		}
	}
	render(t, "monitoring.podMonitor.enabled=true", "monitoring.serviceMonitor.enabled=true",
		"monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.labels.release=prometheus",
		"watchNamespaces={team-a,team-b}", "brokerQPS=12.5", "resyncPeriod=90s",
		"imagePullSecrets[0].name=registry", "extraArgs={--zap-stacktrace-level=panic}", "extraEnv[0].name=A",
		"maxConcurrentReconciles=16",
		"networkPolicy.enabled=true", "networkPolicy.apiServerPorts={443}", "podDisruptionBudget.enabled=true",
		"podDisruptionBudget.maxUnavailable=50%", "priorityClassName=high", "rbac.aggregatedRoles=false",
		"topologySpreadConstraints[0].maxSkew=1")
}

func TestChartCRDsAreTheGeneratedOnes(t *testing.T) {
	generated, _ := filepath.Glob(filepath.Join(kubetest.ProjectRoot(), "config", "crd", "bases", "*.yaml"))
	if len(generated) == 0 {
		t.Fatal("no generated CRDs")
	}
	for _, path := range generated {
		want, _ := os.ReadFile(path)
		got, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(path)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("chart CRD %s differs from config/crd; run make manifests", filepath.Base(path))
		}
	}
}

func TestRenderedObjects(t *testing.T) {
	objects := render(t)
	for _, key := range []string{
		"CustomResourceDefinition/eventstreams.sse.eventstream.dev", "ServiceAccount/evs-eventstream-operator",
		"ClusterRole/evs-eventstream-operator", "ClusterRoleBinding/evs-eventstream-operator",
		"Role/evs-eventstream-operator-leader-election", "Deployment/evs-eventstream-operator",
		"Service/evs-eventstream-operator-metrics",
	} {
		if objects[key] == nil {
			t.Errorf("chart renders no %s", key)
		}
	}

	if role := objects["ClusterRole/evs-eventstream-operator"]; role != nil && !reflect.DeepEqual(role.Object["rules"], generatedRules(t)) {
		t.Errorf("chart ClusterRole rules differ from the generated config/rbac/role.yaml")
	}

	dep := objects["Deployment/evs-eventstream-operator"]
	if dep == nil {
		t.FailNow()
	}
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	args := toStrings(c["args"])
	for _, want := range []string{"--leader-elect=true", "--bridge-image=ghcr.io/eventstream-operator/eventstream-operator:0.1.0"} {
		if !slices.Contains(args, want) {
			t.Errorf("operator args lack %s: %v", want, args)
		}
	}
	sc := c["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("container security context not restricted: %v", sc)
	}
	podSC, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec", "securityContext")
	if podSC["runAsNonRoot"] != true {
		t.Errorf("pod security context not restricted: %v", podSC)
	}
}

func TestValuesChangeTheRendering(t *testing.T) {
	objects := render(t, "watchNamespaces={team-a,team-b}", "bridgeImage=registry.local/bridge:1",
		"leaderElection.enabled=false", "image.repository=registry.local/op", "image.tag=dev")
	dep := objects["Deployment/evs-eventstream-operator"]
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	args := toStrings(c["args"])
	for _, want := range []string{"--watch-namespaces=team-a,team-b", "--bridge-image=registry.local/bridge:1", "--leader-elect=false"} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %s: %v", want, args)
		}
	}
	if c["image"] != "registry.local/op:dev" {
		t.Errorf("image = %v", c["image"])
	}
	if objects["Role/evs-eventstream-operator-leader-election"] != nil {
		t.Error("leader election off, yet its Role is rendered")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
