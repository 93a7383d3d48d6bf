package v1alpha1_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// generatedCRD reads the CRD that make manifests generated.
func generatedCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kubetest.CRDDir(), "sse.eventstream.dev_eventstreams.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}

// TestEveryFieldIsExplained walks the generated schema: every field of spec and status has a
// description, so `kubectl explain eventstream.spec…` is complete.
func TestEveryFieldIsExplained(t *testing.T) {
	crd := generatedCRD(t)
	if len(crd.Spec.Versions) == 0 {
		t.Fatal("the CRD serves no version")
	}
	for _, v := range crd.Spec.Versions {
		root := v.Schema.OpenAPIV3Schema.Properties
		var missing []string
		for _, top := range []string{"spec", "status"} {
			s, ok := root[top]
			if !ok {
				t.Fatalf("%s: no %s in the schema", v.Name, top)
			}
			missing = append(missing, undescribed(top, s)...)
		}
		sort.Strings(missing)
		for _, path := range missing {
			t.Errorf("%s: %s has no description (write a doc comment on the Go field)", v.Name, path)
		}
	}
}

// undescribed lists the paths below s (s included) whose schema has no description. Fields of
// types from Kubernetes itself (resources, tolerations, conditions) are described by their
// own docs and are walked too.
func undescribed(path string, s apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	if s.Description == "" {
		out = append(out, path)
	}
	for name, p := range s.Properties {
		out = append(out, undescribed(path+"."+name, p)...)
	}
	if s.Items != nil && s.Items.Schema != nil {
		// An item shares its list's description; walk its fields only.
		item := *s.Items.Schema
		for name, p := range item.Properties {
			out = append(out, undescribed(path+"[]."+name, p)...)
		}
	}
	return out
}

// TestNotInCategoryAll keeps EventStreams out of `kubectl get/delete all`: with the default
// deletionPolicy Delete, `kubectl delete all --all` would otherwise delete every broker queue.
func TestNotInCategoryAll(t *testing.T) {
	names := generatedCRD(t).Spec.Names
	if slices.Contains(names.Categories, "all") {
		t.Errorf("the CRD is in category all (categories %v)", names.Categories)
	}
	if !slices.Contains(names.Categories, "eventstream") {
		t.Errorf("categories %v do not include eventstream", names.Categories)
	}
}
