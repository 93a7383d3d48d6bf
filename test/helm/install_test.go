package helm

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// TestKustomizeInstall: `kubectl kustomize config/default` (what make dist writes to
// dist/install.yaml) holds the generated CRD and RBAC rules, and an operator Deployment in the
// restricted security context whose flags, ports, probes and resources are the chart's defaults,
// and the chart's leader election rules.
func TestKustomizeInstall(t *testing.T) {
	out, err := exec.Command(kubetest.Kubectl(t), "kustomize", filepath.Join(kubetest.ProjectRoot(), "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	const namespace = "eventstream-system"
	objects := parseObjects(t, string(out))

	if find(objects, "Namespace", "", namespace) == nil {
		t.Errorf("no Namespace %s", namespace)
	}
	crdYAML, err := os.ReadFile(filepath.Join(kubetest.ProjectRoot(), "config", "crd", "bases", "sse.eventstream.dev_eventstreams.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generatedCRD map[string]any
	if err := yaml.Unmarshal(crdYAML, &generatedCRD); err != nil {
		t.Fatal(err)
	}
	crd := find(objects, "CustomResourceDefinition", "", "eventstreams.sse.eventstream.dev")
	if crd == nil || !reflect.DeepEqual(crd.Object["spec"], generatedCRD["spec"]) {
		t.Errorf("CRD missing or its spec differs from config/crd/bases")
	}
	role := find(objects, "ClusterRole", "", "eventstream-operator")
	if role == nil || !reflect.DeepEqual(role.Object["rules"], generatedRules(t)) {
		t.Errorf("ClusterRole missing or its rules differ from config/rbac/role.yaml")
	}
	for _, binding := range []*unstructured.Unstructured{
		find(objects, "ClusterRoleBinding", "", "eventstream-operator"),
		find(objects, "RoleBinding", namespace, "eventstream-operator-leader-election"),
	} {
		if binding == nil {
			t.Error("a binding is missing")
			continue
		}
		subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
		if s := subjects[0].(map[string]any); s["name"] != "eventstream-operator" || s["namespace"] != namespace {
			t.Errorf("%s binds %v", binding.GetName(), subjects)
		}
	}
	if find(objects, "Role", namespace, "eventstream-operator-leader-election") == nil ||
		find(objects, "ServiceAccount", namespace, "eventstream-operator") == nil {
		t.Error("leader election Role or ServiceAccount missing")
	}

	dep := find(objects, "Deployment", namespace, "eventstream-operator")
	if dep == nil {
		t.Fatal("no operator Deployment")
	}
	pod, c := operatorPod(t, map[string]*unstructured.Unstructured{"Deployment/evs-eventstream-operator": dep})
	podSC := pod["securityContext"].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	if podSC["runAsNonRoot"] != true || !reflect.DeepEqual(podSC["seccompProfile"], map[string]any{"type": "RuntimeDefault"}) ||
		sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true ||
		!reflect.DeepEqual(sc["capabilities"], map[string]any{"drop": []any{"ALL"}}) {
		t.Errorf("not the restricted security context: pod %v, container %v", podSC, sc)
	}

	// The chart installed as release eventstream-operator in the same namespace names its
	// objects alike; its Deployment is the reference.
	chart := parseObjects(t, helm(t, "template", "eventstream-operator", chartDir, "--namespace", namespace))
	chartDep := find(chart, "Deployment", namespace, "eventstream-operator")
	if chartDep == nil {
		t.Fatal("chart renders no Deployment eventstream-operator")
	}
	chartPod, chartC := operatorPod(t, map[string]*unstructured.Unstructured{"Deployment/evs-eventstream-operator": chartDep})
	if got, want := expandArgs(t, c, namespace), toStrings(chartC["args"]); !reflect.DeepEqual(got, want) {
		t.Errorf("operator flags differ from the chart's defaults:\nkustomize %v\nchart     %v", got, want)
	}
	for _, field := range []string{"image", "imagePullPolicy", "command", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"} {
		if !reflect.DeepEqual(c[field], chartC[field]) {
			t.Errorf("container %s = %v, chart's %v", field, c[field], chartC[field])
		}
	}
	for _, field := range []string{"securityContext", "terminationGracePeriodSeconds", "serviceAccountName"} {
		if !reflect.DeepEqual(pod[field], chartPod[field]) {
			t.Errorf("pod %s = %v, chart's %v", field, pod[field], chartPod[field])
		}
	}
	leaderElection := find(objects, "Role", namespace, "eventstream-operator-leader-election")
	chartLeaderElection := find(chart, "Role", namespace, "eventstream-operator-leader-election")
	if leaderElection == nil || chartLeaderElection == nil || !reflect.DeepEqual(leaderElection.Object["rules"], chartLeaderElection.Object["rules"]) {
		t.Errorf("leader election Role rules differ from the chart's")
	}
	selector, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "selector", "matchLabels")
	chartSelector, _, _ := unstructured.NestedStringMap(chartDep.Object, "spec", "selector", "matchLabels")
	if !reflect.DeepEqual(selector, chartSelector) {
		t.Errorf("selector = %v, chart's %v", selector, chartSelector)
	}
}

// expandArgs resolves $(VAR) in the container's args the way the kubelet does, from its env
// values and metadata.namespace field references.
func expandArgs(t *testing.T, c map[string]any, namespace string) []string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c["env"].([]any) {
		v := e.(map[string]any)
		if value, ok := v["value"].(string); ok {
			env[v["name"].(string)] = value
		} else if path, _, _ := unstructured.NestedString(v, "valueFrom", "fieldRef", "fieldPath"); path == "metadata.namespace" {
			env[v["name"].(string)] = namespace
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	var args []string
	for _, arg := range toStrings(c["args"]) {
		args = append(args, ref.ReplaceAllStringFunc(arg, func(m string) string {
			value, ok := env[ref.FindStringSubmatch(m)[1]]
			if !ok {
				t.Errorf("arg %s names an undefined variable", arg)
			}
			return value
		}))
	}
	return args
}
