package helm

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// operatorPod returns the pod spec and the operator container of the rendered Deployment.
func operatorPod(t *testing.T, objects map[string]*unstructured.Unstructured) (map[string]any, map[string]any) {
	t.Helper()
	dep := objects["Deployment/evs-eventstream-operator"]
	if dep == nil {
		t.Fatal("chart renders no operator Deployment")
	}
	pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	return pod, pod["containers"].([]any)[0].(map[string]any)
}

// TestOperatorPodValues: imagePullSecrets reach the operator pod and, as
// --bridge-image-pull-secrets, the bridge ServiceAccounts; maxConcurrentReconciles reaches its
// flag (4 by default); extraArgs, extraEnv,
// priorityClassName and topologySpreadConstraints reach the pod; none of them is rendered
// by default.
func TestOperatorPodValues(t *testing.T) {
	pod, c := operatorPod(t, render(t))
	for _, key := range []string{"imagePullSecrets", "priorityClassName", "topologySpreadConstraints"} {
		if _, ok := pod[key]; ok {
			t.Errorf("default pod has %s: %v", key, pod[key])
		}
	}
	if _, ok := c["env"]; ok {
		t.Errorf("default container has env: %v", c["env"])
	}
	for _, arg := range toStrings(c["args"]) {
		if strings.HasPrefix(arg, "--bridge-image-pull-secrets") {
			t.Errorf("default args have %s", arg)
		}
	}
	if args := toStrings(c["args"]); !slices.Contains(args, "--max-concurrent-reconciles=4") {
		t.Errorf("default args lack --max-concurrent-reconciles=4: %v", args)
	}

	pod, c = operatorPod(t, render(t, "imagePullSecrets[0].name=registry", "imagePullSecrets[1].name=mirror",
		"extraArgs={--zap-stacktrace-level=panic}", "maxConcurrentReconciles=16",
		"extraEnv[0].name=OTEL_SERVICE_NAME", "extraEnv[0].value=operator",
		"priorityClassName=system-cluster-critical", "topologySpreadConstraints[0].maxSkew=1",
		"topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
		"topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"))
	wantSecrets := []any{map[string]any{"name": "registry"}, map[string]any{"name": "mirror"}}
	if !reflect.DeepEqual(pod["imagePullSecrets"], wantSecrets) {
		t.Errorf("imagePullSecrets = %v", pod["imagePullSecrets"])
	}
	args := toStrings(c["args"])
	for _, want := range []string{"--bridge-image-pull-secrets=registry,mirror", "--zap-stacktrace-level=panic", "--max-concurrent-reconciles=16"} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %s: %v", want, args)
		}
	}
	wantEnv := []any{map[string]any{"name": "OTEL_SERVICE_NAME", "value": "operator"}}
	if !reflect.DeepEqual(c["env"], wantEnv) {
		t.Errorf("env = %v", c["env"])
	}
	if pod["priorityClassName"] != "system-cluster-critical" {
		t.Errorf("priorityClassName = %v", pod["priorityClassName"])
	}
	spread, _ := pod["topologySpreadConstraints"].([]any)
	if len(spread) != 1 || spread[0].(map[string]any)["topologyKey"] != "kubernetes.io/hostname" {
		t.Errorf("topologySpreadConstraints = %v", pod["topologySpreadConstraints"])
	}
}

// TestPodDisruptionBudget: rendered with more than one replica or when enabled, never for a
// single replica by default.
func TestPodDisruptionBudget(t *testing.T) {
	const key = "PodDisruptionBudget/evs-eventstream-operator"
	if pdb := render(t)[key]; pdb != nil {
		t.Errorf("one replica renders a PodDisruptionBudget")
	}
	for _, sets := range [][]string{{"replicaCount=2"}, {"podDisruptionBudget.enabled=true"}} {
		pdb := render(t, sets...)[key]
		if pdb == nil {
			t.Errorf("%v renders no PodDisruptionBudget", sets)
			continue
		}
		maxUnavailable, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "maxUnavailable")
		selector, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
		if maxUnavailable != float64(1) || selector["app.kubernetes.io/instance"] != "evs" {
			t.Errorf("%v: pdb spec = %v", sets, pdb.Object["spec"])
		}
	}
}

// TestNetworkPolicies: off by default; enabled, the operator's policy admits its metrics and
// probe ports and lets it reach DNS, the API server, the brokers' management API and bridge
// metrics; with watchNamespaces each namespace gets a bridge policy that admits SSE from
// anywhere and metrics from the operator's pods only.
func TestNetworkPolicies(t *testing.T) {
	for key := range render(t) {
		if strings.HasPrefix(key, "NetworkPolicy/") {
			t.Errorf("default renders %s", key)
		}
	}
	objects := renderAll(t, "networkPolicy.enabled=true", "watchNamespaces={team-a,team-b}")
	op := find(objects, "NetworkPolicy", "evs-system", "evs-eventstream-operator")
	if op == nil {
		t.Fatal("no operator NetworkPolicy")
	}
	types, _, _ := unstructured.NestedStringSlice(op.Object, "spec", "policyTypes")
	if !slices.Equal(types, []string{"Ingress", "Egress"}) {
		t.Errorf("policyTypes = %v", types)
	}
	ingress, _, _ := unstructured.NestedSlice(op.Object, "spec", "ingress")
	if got := rulePorts(ingress); !slices.Equal(got, []float64{8080, 8081}) {
		t.Errorf("operator ingress ports = %v", got)
	}
	egress, _, _ := unstructured.NestedSlice(op.Object, "spec", "egress")
	if got := rulePorts(egress); !slices.Equal(got, []float64{53, 53, 443, 6443, 15672, 15671, 9090}) {
		t.Errorf("operator egress ports = %v", got)
	}

	for _, ns := range []string{"team-a", "team-b"} {
		bridges := find(objects, "NetworkPolicy", ns, "evs-eventstream-operator-bridges")
		if bridges == nil {
			t.Errorf("no bridge NetworkPolicy in %s", ns)
			continue
		}
		selector, _, _ := unstructured.NestedStringMap(bridges.Object, "spec", "podSelector", "matchLabels")
		if selector["app.kubernetes.io/component"] != "bridge" || selector["app.kubernetes.io/managed-by"] != "eventstream-operator" {
			t.Errorf("bridge policy selects %v", selector)
		}
		rules, _, _ := unstructured.NestedSlice(bridges.Object, "spec", "ingress")
		if len(rules) != 2 {
			t.Fatalf("bridge ingress = %v", rules)
		}
		sse, metrics := rules[0].(map[string]any), rules[1].(map[string]any)
		if _, limited := sse["from"]; limited || !slices.Equal(rulePorts(rules[:1]), []float64{8080}) {
			t.Errorf("SSE rule = %v", sse)
		}
		from := metrics["from"].([]any)
		peer := from[0].(map[string]any)
		nsLabels, _, _ := unstructured.NestedStringMap(peer, "namespaceSelector", "matchLabels")
		podLabels, _, _ := unstructured.NestedStringMap(peer, "podSelector", "matchLabels")
		if len(from) != 1 || nsLabels["kubernetes.io/metadata.name"] != "evs-system" || podLabels["app.kubernetes.io/instance"] != "evs" ||
			!slices.Equal(rulePorts(rules[1:]), []float64{9090}) {
			t.Errorf("metrics rule = %v", metrics)
		}
	}
}

// TestAggregatedRoles: view holds only read verbs, edit may write EventStreams but not their
// status, and each carries its aggregation label.
func TestAggregatedRoles(t *testing.T) {
	objects := render(t)
	view, edit := objects["ClusterRole/evs-eventstream-operator-view"], objects["ClusterRole/evs-eventstream-operator-edit"]
	if view == nil || edit == nil {
		t.Fatal("no aggregated view/edit ClusterRoles")
	}
	if view.GetLabels()["rbac.authorization.k8s.io/aggregate-to-view"] != "true" {
		t.Errorf("view labels = %v", view.GetLabels())
	}
	if edit.GetLabels()["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" || edit.GetLabels()["rbac.authorization.k8s.io/aggregate-to-admin"] != "true" {
		t.Errorf("edit labels = %v", edit.GetLabels())
	}
	viewRules, _, _ := unstructured.NestedSlice(view.Object, "rules")
	for _, r := range viewRules {
		for _, verb := range toStrings(r.(map[string]any)["verbs"]) {
			if !slices.Contains([]string{"get", "list", "watch"}, verb) {
				t.Errorf("view grants %s", verb)
			}
		}
	}
	editRules, _, _ := unstructured.NestedSlice(edit.Object, "rules")
	for _, r := range editRules {
		rule := r.(map[string]any)
		resources, verbs := toStrings(rule["resources"]), toStrings(rule["verbs"])
		if slices.Contains(resources, "eventstreams") && !slices.Contains(verbs, "create") {
			t.Errorf("edit cannot create EventStreams: %v", rule)
		}
		if slices.Contains(resources, "eventstreams/status") && slices.Contains(verbs, "patch") {
			t.Errorf("edit may patch status: %v", rule)
		}
	}
	if objects := render(t, "rbac.aggregatedRoles=false"); objects["ClusterRole/evs-eventstream-operator-view"] != nil {
		t.Error("rbac.aggregatedRoles=false still renders the view role")
	}
}

// TestNamespacedRBAC: with watchNamespaces the operator's generated rules come as a Role and
// RoleBinding in each watched namespace, and it holds no ClusterRole(Binding) of its own.
func TestNamespacedRBAC(t *testing.T) {
	objects := renderAll(t, "watchNamespaces={team-a,team-b}")
	want := generatedRules(t)
	for _, ns := range []string{"team-a", "team-b"} {
		role := find(objects, "Role", ns, "evs-eventstream-operator")
		if role == nil || !reflect.DeepEqual(role.Object["rules"], want) {
			t.Errorf("Role in %s missing or its rules differ from config/rbac/role.yaml: %v", ns, role)
		}
		binding := find(objects, "RoleBinding", ns, "evs-eventstream-operator")
		if binding == nil {
			t.Errorf("no RoleBinding in %s", ns)
			continue
		}
		subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
		subject := subjects[0].(map[string]any)
		if subject["name"] != "evs-eventstream-operator" || subject["namespace"] != "evs-system" {
			t.Errorf("RoleBinding in %s binds %v", ns, subjects)
		}
	}
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		if find(objects, kind, "", "evs-eventstream-operator") != nil {
			t.Errorf("watchNamespaces set, yet the operator gets a %s", kind)
		}
	}
	if find(objects, "Role", "evs-system", "evs-eventstream-operator-leader-election") == nil {
		t.Error("leader election Role missing")
	}
}

// rulePorts lists the ports of NetworkPolicy rules, in order (YAML numbers parse as float64).
func rulePorts(rules []any) []float64 {
	var ports []float64
	for _, r := range rules {
		list, _ := r.(map[string]any)["ports"].([]any)
		for _, p := range list {
			ports = append(ports, p.(map[string]any)["port"].(float64))
		}
	}
	return ports
}

func find(objects []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, obj := range objects {
		if obj.GetKind() == kind && obj.GetNamespace() == namespace && obj.GetName() == name {
			return obj
		}
	}
	return nil
}
