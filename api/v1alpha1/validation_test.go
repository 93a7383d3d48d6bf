package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// TestValidation applies manifests to a real API server with the generated CRD: invalid
// ones must be rejected with a message a user understands, the samples must apply, and
// defaults must match the design.
func TestValidation(t *testing.T) {
	assets, err := kubetest.AssetsDir()
	if err != nil {
		if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skipf("needs the envtest API server: %v", err)
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{kubetest.CRDDir()}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := esv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	invalid := []struct {
		name, spec, message string
	}{
		{"binding key with empty word", `bindingKeys: ["team..status"]`, "a binding key must be a topic pattern"},
		{"binding key with a space", `bindingKeys: ["team.* .status"]`, "a binding key must be a topic pattern"},
		{"empty binding keys", `bindingKeys: []`, "at least one binding key is required"},
		{"duplicate binding keys", `bindingKeys: ["a.#", "a.#"]`, "binding keys must be unique"},
		{"placeholder not a whole segment", `bridge: {routingKeyTemplate: "team-{team_id}.job"}`, "whole-segment placeholder"},
		{"unclosed placeholder", `bridge: {routingKeyTemplate: "team.{team_id.job"}`, "whole-segment placeholder"},
		{"tenant placeholder missing from template", `bridge: {routingKeyTemplate: "org.{org_id}.x"}`, "tenantPlaceholder must name a placeholder"},
		{"replicas > 1 on classic", `bridge: {replicas: 2}`, "bridge.replicas > 1 needs queue.type stream"},
		{"replicas > 1 on quorum", "queue: {type: quorum}\nbridge: {replicas: 3}", "bridge.replicas > 1 needs queue.type stream"},
		{"zero TTL", `queue: {messageTTL: 0s}`, "messageTTL must be greater than zero"},
		{"negative TTL", `queue: {messageTTL: "-5m"}`, "spec.queue.messageTTL"},
		{"TTL not a duration", `queue: {messageTTL: "ten minutes"}`, "spec.queue.messageTTL"},
		{"prefetch 0", `consumer: {prefetch: 0}`, "spec.consumer.prefetch: Invalid value: 0"},
		{"prefetch too large", `consumer: {prefetch: 65536}`, "spec.consumer.prefetch: Invalid value: 65536"},
		{"queue name reserved", `queue: {name: amq.events}`, "reserved by RabbitMQ"},
		{"queue name with slash", `queue: {name: "events/sse"}`, "a name may contain letters, digits"},
		{"exchange name empty", `exchange: {name: ""}`, "spec.exchange.name"},
		{"unknown queue type", `queue: {type: lazy}`, `Unsupported value: "lazy"`},
		{"maxLength on stream", `queue: {type: stream, maxLength: 10}`, "maxLength is not supported by stream queues"},
		{"unknown overflow", `bridge: {buffer: {overflow: dropNewest}}`, `Unsupported value: "dropNewest"`},
		{"jwt without settings", `bridge: {auth: {mode: jwt}}`, "bridge.auth.mode is jwt by default and needs a key source"},
		{"no key source (auth jwt by default)", `bridge: {auth: {}}`, "set bridge.auth.jwt.secretRef: {name: <Secret with key 'secret'>} (HS256) or bridge.auth.jwt.jwksURL"},
		{"no key source, the message shows the way out for development", `bridge: {replicas: 1}`, "or write bridge.auth.mode: none"},
		{"auth none on a NodePort Service", `bridge: {auth: {mode: none}, service: {type: NodePort}}`, "refused with a NodePort or LoadBalancer Service"},
		{"auth none on a LoadBalancer Service", `bridge: {auth: {mode: none}, service: {type: LoadBalancer}}`, "refused with a NodePort or LoadBalancer Service"},
		{"empty HS256 secret key", `bridge: {auth: {jwt: {secretRef: {name: jwt, key: ""}}}}`, "spec.bridge.auth.jwt.secretRef.key"},
		{"per-subject limit 0", `bridge: {auth: {mode: none}, limits: {maxConnectionsPerSubject: 0}}`, "spec.bridge.limits.maxConnectionsPerSubject"},
		{"jwt with two key sources", `bridge: {auth: {mode: jwt, jwt: {jwksURL: "https://idp/jwks", secretRef: {name: s}}}}`, "set exactly one of"},
		{"heartbeat too short", `bridge: {heartbeat: 100ms}`, "heartbeat must be between 1s and 5m"},
		{"bridge env overriding the connection Secret", `bridge: {env: [{name: OTEL_SERVICE_NAME, value: jobs}, {name: RABBITMQ_URL, value: "amqp://elsewhere"}]}`, "bridge.env must not set RABBITMQ_*, BRIDGE_* or GOMEMLIMIT"},
		{"bridge env overriding the JWT key", `bridge: {env: [{name: BRIDGE_AUTH_HS256_SECRETS, value: guessable}]}`, "bridge.env must not set RABBITMQ_*, BRIDGE_* or GOMEMLIMIT"},
		{"bridge env twice the same name", `bridge: {env: [{name: OTEL_SERVICE_NAME, value: a}, {name: OTEL_SERVICE_NAME, value: b}]}`, "spec.bridge.env[1]: Duplicate value"},
		{"wildcard CORS origin", `bridge: {cors: {allowedOrigins: ["*"]}}`, "spec.bridge.cors.allowedOrigins[0]"},
		{"snapshot of no keys", `bridge: {snapshot: {maxKeys: 0}}`, "spec.bridge.snapshot.maxKeys"},
		{"snapshot bytes too small", `bridge: {snapshot: {maxBytes: 1Ki}}`, "snapshot.maxBytes must be between 64Ki and 16Gi"},
		{"snapshot bytes as a huge number", `bridge: {snapshot: {maxBytes: 100000000000}}`, "snapshot.maxBytes must be between 64Ki and 16Gi"},
		{"negative snapshot age", `bridge: {snapshot: {maxAge: -1h}}`, "spec.bridge.snapshot.maxAge"},
		{"missing secret", ``, "spec.rabbitmq"},
	}
	for _, tt := range invalid {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			obj := manifest(t, "invalid", tt.spec, tt.name != "missing secret")
			if !strings.Contains(tt.spec, "auth") && !strings.Contains(tt.message, "auth") {
				withDevelopmentAuth(t, obj) // only the rule under test fails
			}
			err := c.Create(ctx, obj)
			if err == nil {
				_ = c.Delete(ctx, obj)
				t.Fatalf("accepted an invalid spec:\n%s", tt.spec)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q does not say %q", err, tt.message)
			}
		})
	}

	t.Run("immutable queue name and type", func(t *testing.T) {
		obj := manifest(t, "immutable", `queue: {name: a}`, true)
		withDevelopmentAuth(t, obj)
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(obj.Object, "b", "spec", "queue", "name"); err != nil {
			t.Fatal(err)
		}
		err := c.Update(ctx, obj)
		if err == nil || !strings.Contains(err.Error(), "queue.name is immutable") {
			t.Fatalf("update error = %v", err)
		}
	})

	t.Run("defaults match the design", func(t *testing.T) {
		// The smallest manifest a user can write: a connection Secret and an HS256 key Secret
		// named without its key.
		obj := manifest(t, "defaults", `bridge: {auth: {jwt: {secretRef: {name: jwt}}}}`, true)
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		var es esv1.EventStream
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &es); err != nil {
			t.Fatal(err)
		}
		s := es.Spec
		checks := map[string][2]any{
			"exchange":     {string(s.Exchange.Name), contract.DefaultExchange},
			"queue":        {string(s.Queue.Name), contract.DefaultQueue},
			"type":         {string(s.Queue.Type), contract.DefaultQueueType},
			"ttl":          {s.Queue.MessageTTL.Duration, contract.DefaultMessageTTL},
			"deadLetter":   {*s.Queue.DeadLetter.Enabled, contract.DefaultDeadLetter},
			"bindingKeys":  {len(s.BindingKeys) == 1 && s.BindingKeys[0] == contract.DefaultBindingKey, true},
			"prefetch":     {s.Consumer.Prefetch, int32(contract.DefaultPrefetch)},
			"replicas":     {*s.Bridge.Replicas, int32(contract.DefaultReplicas)},
			"path":         {s.Bridge.Path, contract.DefaultPath},
			"template":     {s.Bridge.RoutingKeyTemplate, contract.DefaultRoutingKeyTemplate},
			"auth":         {string(s.Bridge.Auth.Mode), contract.DefaultAuthMode},
			"hs256 key":    {s.Bridge.Auth.JWT.SecretRef.Key, esv1.DefaultHS256SecretKey},
			"tenants":      {s.Bridge.Auth.JWT.TenantsClaim, contract.DefaultTenantsClaim},
			"scope":        {s.Bridge.Auth.JWT.RequiredScope, contract.DefaultRequiredScope},
			"per subject":  {s.Bridge.Limits.MaxConnectionsPerSubject, int32(contract.DefaultMaxConnectionsPerSubject)},
			"per tenant":   {s.Bridge.Limits.MaxConnectionsPerTenant, int32(contract.DefaultMaxConnectionsPerTenant)},
			"service type": {string(s.Bridge.Service.Type), contract.DefaultServiceType},
			"heartbeat":    {s.Bridge.Heartbeat.Duration, contract.DefaultHeartbeat},
			"buffer":       {s.Bridge.Buffer.Size, int32(contract.DefaultBufferSize)},
			"overflow":     {string(s.Bridge.Buffer.Overflow), contract.DefaultOverflow},
			"replay":       {s.Bridge.Replay.Size, int32(contract.DefaultReplaySize)},
			"service port": {s.Bridge.Service.Port, int32(contract.DefaultServicePort)},
			"deletion":     {string(s.DeletionPolicy), contract.DefaultDeletionPolicy},
		}
		for name, c := range checks {
			if c[0] != c[1] {
				t.Errorf("default %s = %v, want %v", name, c[0], c[1])
			}
		}
	})

	t.Run("snapshot defaults fit a job list", func(t *testing.T) {
		obj := manifest(t, "snapshot", `bridge: {auth: {jwt: {secretRef: {name: jwt}}}, snapshot: {}}`, true)
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		var es esv1.EventStream
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &es); err != nil {
			t.Fatal(err)
		}
		snap := es.Spec.Bridge.Snapshot
		if *snap.MaxKeys != 10000 || snap.MaxBytes.String() != "32Mi" || snap.MaxAge.Duration.String() != "24h0m0s" {
			t.Errorf("snapshot defaults = %d keys, %s, %s; want 10000, 32Mi, 24h", *snap.MaxKeys, snap.MaxBytes, snap.MaxAge.Duration)
		}
	})

	t.Run("each Secret reference defaults to the key of what it holds", func(t *testing.T) {
		for _, tt := range []struct{ spec, want string }{
			{`bridge: {auth: {jwt: {secretRef: {name: jwt}}}}`, "secret"},
			{`bridge: {auth: {jwt: {publicKeySecretRef: {name: jwt}}}}`, "key.pem"},
			{"rabbitmq: {connectionSecret: {name: rabbitmq}, tls: {caSecret: {name: ca}}}\nbridge: {auth: {mode: none}}", "ca.crt"},
		} {
			obj := manifest(t, "keys", tt.spec, !strings.HasPrefix(tt.spec, "rabbitmq"))
			if err := c.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
			var es esv1.EventStream
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &es); err != nil {
				t.Fatal(err)
			}
			var got string
			switch jwt := es.Spec.Bridge.Auth.JWT; {
			case jwt != nil && jwt.SecretRef != nil:
				got = jwt.SecretRef.Key
			case jwt != nil && jwt.PublicKeySecretRef != nil:
				got = jwt.PublicKeySecretRef.Key
			default:
				got = es.Spec.RabbitMQ.TLS.CASecret.Key
			}
			if got != tt.want {
				t.Errorf("%s: key defaults to %q, want %q", tt.spec, got, tt.want)
			}
		}
	})

	t.Run("auth none on a ClusterIP Service is accepted", func(t *testing.T) {
		obj := manifest(t, "dev", `bridge: {auth: {mode: none}}`, true)
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bridge env with OTEL variables is accepted", func(t *testing.T) {
		obj := manifest(t, "otel", `bridge: {env: [{name: OTEL_EXPORTER_OTLP_PROTOCOL, value: grpc}, {name: OTEL_EXPORTER_OTLP_HEADERS, valueFrom: {secretKeyRef: {name: otel, key: headers}}}]}`, true)
		withDevelopmentAuth(t, obj)
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("samples apply", func(t *testing.T) {
		samples, _ := filepath.Glob(filepath.Join(kubetest.ProjectRoot(), "config", "samples", "*.yaml"))
		if len(samples) == 0 {
			t.Fatal("no samples in config/samples")
		}
		for _, path := range samples {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range strings.Split(string(data), "\n---\n") {
				obj := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if obj.GetKind() != "EventStream" {
					continue
				}
				obj.SetNamespace("default")
				if err := c.Create(ctx, obj); err != nil {
					t.Errorf("%s: %v", filepath.Base(path), err)
				}
			}
		}
	})
}

var counter int

// withDevelopmentAuth sets bridge.auth.mode none when the manifest says nothing of auth, so
// that a case about another field is not also refused for its missing key source.
func withDevelopmentAuth(t *testing.T, obj *unstructured.Unstructured) {
	t.Helper()
	if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "bridge", "auth"); found {
		return
	}
	if err := unstructured.SetNestedField(obj.Object, "none", "spec", "bridge", "auth", "mode"); err != nil {
		t.Fatal(err)
	}
}

// manifest builds an EventStream in namespace default from a YAML fragment of its spec.
func manifest(t *testing.T, prefix, spec string, withSecret bool) *unstructured.Unstructured {
	t.Helper()
	counter++
	body := "apiVersion: sse.eventstream.dev/v1alpha1\nkind: EventStream\nmetadata:\n  namespace: default\n  generateName: " + prefix + "-\nspec:\n"
	if withSecret {
		body += "  rabbitmq: {connectionSecret: {name: rabbitmq}}\n"
	}
	for _, line := range strings.Split(spec, "\n") {
		if line != "" {
			body += "  " + line + "\n"
		}
	}
	if !withSecret && spec == "" {
		body += "  bindingKeys: [\"a\"]\n"
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(body), &obj.Object); err != nil {
		t.Fatalf("bad test manifest: %v\n%s", err, body)
	}
	return obj
}
