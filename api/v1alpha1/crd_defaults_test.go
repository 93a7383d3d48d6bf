package v1alpha1_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// kubernetesTypes are spec fields of Kubernetes' own types: their defaults (e.g. an EnvVar's
// configMapKeyRef.name "") come with the type, not from this project.
var kubernetesTypes = []string{"spec.bridge.env", "spec.bridge.resources", "spec.bridge.tolerations",
	"spec.rabbitmq.connectionSecret"}

// TestCRDDefaultsAreTheContracts: a +kubebuilder:default marker cannot name a Go constant, so
// the generated CRD spells each default again. Every default in it must be listed here, with
// the constant the operator and the bridge fall back to; a new or changed marker fails until
// it names its constant.
func TestCRDDefaultsAreTheContracts(t *testing.T) {
	want := map[string]any{
		"spec.exchange.name":                          contract.DefaultExchange,
		"spec.queue.name":                             contract.DefaultQueue,
		"spec.queue.type":                             contract.DefaultQueueType,
		"spec.queue.messageTTL":                       contract.DefaultMessageTTL,
		"spec.queue.deadLetter.enabled":               contract.DefaultDeadLetter,
		"spec.bindingKeys":                            []string{contract.DefaultBindingKey},
		"spec.consumer.prefetch":                      contract.DefaultPrefetch,
		"spec.deletionPolicy":                         contract.DefaultDeletionPolicy,
		"spec.bridge.replicas":                        contract.DefaultReplicas,
		"spec.bridge.path":                            contract.DefaultPath,
		"spec.bridge.routingKeyTemplate":              contract.DefaultRoutingKeyTemplate,
		"spec.bridge.tenantPlaceholder":               contract.DefaultTenantParam,
		"spec.bridge.heartbeat":                       contract.DefaultHeartbeat,
		"spec.bridge.buffer.size":                     contract.DefaultBufferSize,
		"spec.bridge.buffer.overflow":                 contract.DefaultOverflow,
		"spec.bridge.replay.size":                     contract.DefaultReplaySize,
		"spec.bridge.limits.maxConnections":           contract.DefaultMaxConnections,
		"spec.bridge.limits.maxConnectionsPerTenant":  contract.DefaultMaxConnectionsPerTenant,
		"spec.bridge.limits.maxConnectionsPerSubject": contract.DefaultMaxConnectionsPerSubject,
		"spec.bridge.auth.mode":                       contract.DefaultAuthMode,
		"spec.bridge.auth.jwt.tenantsClaim":           contract.DefaultTenantsClaim,
		"spec.bridge.auth.jwt.requiredScope":          contract.DefaultRequiredScope,
		"spec.bridge.auth.jwt.secretRef.key":          esv1.DefaultHS256SecretKey,
		"spec.bridge.auth.jwt.publicKeySecretRef.key": esv1.DefaultPublicKeyKey,
		"spec.rabbitmq.tls.caSecret.key":              esv1.DefaultCAKey,
		"spec.bridge.service.type":                    contract.DefaultServiceType,
		"spec.bridge.service.port":                    contract.DefaultServicePort,
		"spec.bridge.snapshot.maxKeys":                contract.DefaultSnapshotMaxKeys,
		"spec.bridge.snapshot.maxBytes":               *resource.NewQuantity(contract.DefaultSnapshotMaxBytes, resource.BinarySI),
		"spec.bridge.snapshot.maxAge":                 contract.DefaultSnapshotMaxAge,
	}
	for _, v := range generatedCRD(t).Spec.Versions {
		got := map[string]*apiextensionsv1.JSON{}
		collectDefaults("spec", v.Schema.OpenAPIV3Schema.Properties["spec"], got)
		for _, path := range slices.Sorted(maps.Keys(got)) {
			w, ok := want[path]
			if !ok {
				t.Errorf("%s: the CRD defaults %s to %s, which no contract constant says: add it to internal/contract and to this table", v.Name, path, got[path].Raw)
				continue
			}
			if !sameDefault(t, got[path].Raw, w) {
				t.Errorf("%s: the CRD defaults %s to %s, the contract to %v", v.Name, path, got[path].Raw, w)
			}
		}
		for _, path := range slices.Sorted(maps.Keys(want)) {
			if _, ok := got[path]; !ok {
				t.Errorf("%s: the CRD has no default for %s (want %v)", v.Name, path, want[path])
			}
		}
	}
}

// collectDefaults records, by path, the defaults below s (s included). An empty object ({})
// only makes the API server default the fields inside it, and is not a value of its own.
func collectDefaults(path string, s apiextensionsv1.JSONSchemaProps, into map[string]*apiextensionsv1.JSON) {
	if slices.Contains(kubernetesTypes, path) {
		return
	}
	if s.Default != nil && string(s.Default.Raw) != "{}" {
		into[path] = s.Default
	}
	for name, p := range s.Properties {
		collectDefaults(path+"."+name, p, into)
	}
}

// sameDefault compares a CRD default with a Go value: durations by value ("15s" = 15*time.Second),
// the rest as JSON.
func sameDefault(t *testing.T, raw []byte, want any) bool {
	t.Helper()
	if d, ok := want.(time.Duration); ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return false
		}
		got, err := time.ParseDuration(s)
		return err == nil && got == d
	}
	if q, ok := want.(resource.Quantity); ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return false
		}
		got, err := resource.ParseQuantity(s)
		return err == nil && got.Cmp(q) == 0
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got, w any
	if json.Unmarshal(raw, &got) != nil || json.Unmarshal(wantJSON, &w) != nil {
		return false
	}
	return reflect.DeepEqual(got, w)
}
