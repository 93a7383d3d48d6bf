package controllers

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

const secretValue = "amqp://user:s3cr3t-passw0rd@rabbitmq:5672/"

func fullStream() *esv1.EventStream {
	off := false
	return &esv1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "jobs", UID: "uid-1"},
		Spec: esv1.EventStreamSpec{
			RabbitMQ: esv1.RabbitMQConnection{
				ConnectionSecret: corev1.LocalObjectReference{Name: "rabbitmq"},
				TLS:              &esv1.TLSSpec{CASecret: esv1.CASecretReference{Name: "rabbitmq-ca", Key: "bundle.pem"}},
			},
			Exchange:    esv1.ExchangeSpec{Name: "ex.topic"},
			Queue:       esv1.QueueSpec{Name: "q.events", Type: esv1.QueueTypeStream, DeadLetter: esv1.DeadLetterSpec{Enabled: &off}},
			BindingKeys: []esv1.BindingKey{"org.*.#"},
			Consumer:    esv1.ConsumerSpec{Prefetch: 250},
			Bridge: esv1.BridgeSpec{
				Replicas:           ptr(int32(3)),
				Image:              "example.com/bridge:v9",
				Path:               "/events",
				RoutingKeyTemplate: "org.{org_id}.{kind}",
				TenantPlaceholder:  "org_id",
				Auth: esv1.BridgeAuthSpec{Mode: esv1.AuthModeJWT, JWT: &esv1.JWTAuthSpec{
					SecretRef: &esv1.HS256SecretReference{Name: "jwt", Key: "hmac"}, Algorithms: []esv1.JWTAlgorithm{"HS256"},
					Audience: "events", Issuer: "https://idp", TenantsClaim: "orgs", RequiredScope: "read:events", Cookie: "session",
				}},
				Heartbeat: &metav1.Duration{Duration: 20 * time.Second},
				Buffer:    esv1.BufferSpec{Size: 64, Overflow: esv1.OverflowLastValue},
				Replay:    esv1.ReplaySpec{Size: 50},
				Snapshot: &esv1.SnapshotSpec{MaxKeys: ptr(int32(500)), MaxBytes: ptr(resource.MustParse("8Mi")),
					MaxAge: &metav1.Duration{Duration: 2 * time.Hour}},
				Limits:         esv1.LimitsSpec{MaxConnections: 500, MaxConnectionsPerTenant: 20, MaxConnectionsPerSubject: 7},
				CORS:           esv1.CORSSpec{AllowedOrigins: []string{"https://a.example", "https://b.example"}},
				Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}},
				NodeSelector:   map[string]string{"pool": "edge"},
				Tolerations:    []corev1.Toleration{{Key: "edge", Operator: corev1.TolerationOpExists}},
				PodAnnotations: map[string]string{"prometheus.io/scrape": "true"},
				Env:            []corev1.EnvVar{{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://collector:4317"}},
				Service:        esv1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 8443, Annotations: map[string]string{"lb": "internal"}},
			},
		},
	}
}

func TestBuildDeploymentCarriesEverySpecField(t *testing.T) {
	es := fullStream()
	dep := buildDeployment(workloadInput{Stream: es, DefaultImage: "default/image:1", SecretDigests: map[string]string{"rabbitmq": "d1"}})
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]

	wantArgs := []string{
		"--exchange=ex.topic", "--queue=q.events", "--queue-type=stream", "--prefetch=250",
		"--path=/events", "--routing-key-template=org.{org_id}.{kind}", "--tenant-param=org_id",
		"--heartbeat=20s", "--buffer-size=64", "--overflow=lastValue", "--replay-size=50",
		"--snapshot-max-keys=500", "--snapshot-max-bytes=8388608", "--snapshot-max-age=10m0s", // 2h, capped to the stream's retention
		"--max-connections=500", "--max-connections-per-tenant=20", "--max-connections-per-subject=7",
		"--amqp-ca-file=/etc/eventstream/tls/bundle.pem",
		"--cors-allowed-origins=https://a.example,https://b.example",
		"--auth-mode=jwt", "--auth-hs256-secret-env=" + envJWTHS256Secrets, "--auth-algorithms=HS256",
		"--auth-audience=events", "--auth-issuer=https://idp", "--auth-tenants-claim=orgs",
		"--auth-required-scope=read:events", "--auth-cookie=session",
	}
	for _, a := range wantArgs {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args lack %s: %v", a, c.Args)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--dead-letter-exchange") {
			t.Errorf("dead-lettering is off, yet %s", a)
		}
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"image", c.Image, "example.com/bridge:v9"},
		{"command", c.Command, []string{"/bridge"}},
		{"replicas", *dep.Spec.Replicas, int32(3)},
		{"strategy", dep.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"max unavailable", dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue(), 0},
		{"memory limit", c.Resources.Limits.Memory().String(), "128Mi"},
		{"GOMEMLIMIT 90 % of it", envValue(c.Env, "GOMEMLIMIT"), "120795955"},
		{"stream env", envValue(c.Env, "OTEL_EXPORTER_OTLP_ENDPOINT"), "http://collector:4317"},
		{"node selector", pod.NodeSelector["pool"], "edge"},
		{"toleration", pod.Tolerations[0].Key, "edge"},
		{"pod annotation", dep.Spec.Template.Annotations["prometheus.io/scrape"], "true"},
		{"service account", pod.ServiceAccountName, "jobs-bridge"},
		{"token not mounted", *pod.AutomountServiceAccountToken, false},
		{"run as non-root", *pod.SecurityContext.RunAsNonRoot, true},
		{"seccomp", pod.SecurityContext.SeccompProfile.Type, corev1.SeccompProfileTypeRuntimeDefault},
		{"read-only root", *c.SecurityContext.ReadOnlyRootFilesystem, true},
		{"no privilege escalation", *c.SecurityContext.AllowPrivilegeEscalation, false},
		{"capabilities", c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}},
		{"readiness", c.ReadinessProbe.HTTPGet.Path, "/readyz"},
		{"liveness", c.LivenessProbe.HTTPGet.Path, "/healthz"},
		{"probe port", c.ReadinessProbe.HTTPGet.Port.StrVal, BridgeMetricsPortName},
		{"metrics port", c.Ports[1].Name, BridgeMetricsPortName},
		{"grace beyond drain", *pod.TerminationGracePeriodSeconds > int64(bridgeDrainTimeout/time.Second), true},
		{"url from secretKeyRef", c.Env[0].ValueFrom.SecretKeyRef.Name + "/" + c.Env[0].ValueFrom.SecretKeyRef.Key, "rabbitmq/uri"},
		{"jwt from secretKeyRef", c.Env[1].ValueFrom.SecretKeyRef.Name + "/" + c.Env[1].ValueFrom.SecretKeyRef.Key, "jwt/hmac"},
		{"selector", dep.Spec.Selector.MatchLabels["app.kubernetes.io/instance"], "jobs"},
		{"managed-by", dep.Labels[LabelManagedBy], "eventstream-operator"},
	}
	for _, ch := range checks {
		gotJSON, _ := json.Marshal(ch.got)
		wantJSON, _ := json.Marshal(ch.want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%s = %s, want %s", ch.name, gotJSON, wantJSON)
		}
	}
	if dep.Spec.Template.Annotations[ConfigHashAnnotation] == "" {
		t.Error("no config hash on the pod template")
	}
}

func TestBridgeEnvFollowsTheOperatorsAndCannotOverrideIt(t *testing.T) {
	otelGRPC := []corev1.EnvVar{
		{Name: "OTEL_EXPORTER_OTLP_PROTOCOL", Value: "grpc"},
		{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://collector:4317"},
	}
	secretHeaders := corev1.EnvVar{Name: "OTEL_EXPORTER_OTLP_HEADERS", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "otel"}, Key: "headers"},
	}}
	tests := []struct {
		name string
		env  []corev1.EnvVar
		want []string // the container's env names, in order
	}{
		{"none", nil, []string{contract.EnvRabbitMQURL, envJWTHS256Secrets, "GOMEMLIMIT"}},
		{"OTEL over gRPC", otelGRPC, []string{contract.EnvRabbitMQURL, envJWTHS256Secrets, "GOMEMLIMIT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{"value from a Secret", []corev1.EnvVar{secretHeaders}, []string{contract.EnvRabbitMQURL, envJWTHS256Secrets, "GOMEMLIMIT", "OTEL_EXPORTER_OTLP_HEADERS"}},
		{"operator's names dropped", []corev1.EnvVar{
			{Name: contract.EnvRabbitMQURL, Value: "amqp://elsewhere"}, {Name: envJWTHS256Secrets, Value: "guessable"},
			{Name: "RABBITMQ_EVENTS_QUEUE", Value: "other"}, {Name: "GOMEMLIMIT", Value: "1"}, otelGRPC[0],
		}, []string{contract.EnvRabbitMQURL, envJWTHS256Secrets, "GOMEMLIMIT", "OTEL_EXPORTER_OTLP_PROTOCOL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := fullStream()
			es.Spec.Bridge.Env = tt.env
			c := buildDeployment(workloadInput{Stream: es, DefaultImage: "i"}).Spec.Template.Spec.Containers[0]
			var names []string
			for _, e := range c.Env {
				names = append(names, e.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Fatalf("env names %v, want %v", names, tt.want)
			}
			if c.Env[0].ValueFrom.SecretKeyRef.Name != "rabbitmq" || envValue(c.Env, "GOMEMLIMIT") != "120795955" {
				t.Fatalf("the operator's env was overridden: %+v", c.Env)
			}
		})
	}
}

func TestBrokerLostGraceOnlyWithAnotherReplica(t *testing.T) {
	for _, tt := range []struct {
		queueType esv1.QueueType
		replicas  int32
		off       bool
	}{
		{esv1.QueueTypeStream, 1, true},
		{esv1.QueueTypeStream, 2, false},
		{esv1.QueueTypeClassic, 1, false},
	} {
		es := fullStream()
		es.Spec.Queue.Type = tt.queueType
		es.Spec.Bridge.Replicas = &tt.replicas
		if got := slices.Contains(bridgeArgs(es), "--broker-lost-grace=0"); got != tt.off {
			t.Errorf("%s queue, %d replicas: --broker-lost-grace=0 given %v, want %v", tt.queueType, tt.replicas, got, tt.off)
		}
	}
}

func TestBuildDeploymentDefaults(t *testing.T) {
	es := &esv1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: esv1.EventStreamSpec{RabbitMQ: esv1.RabbitMQConnection{ConnectionSecret: corev1.LocalObjectReference{Name: "rmq"}}}}
	dep := buildDeployment(workloadInput{Stream: es, DefaultImage: "operator/image:1"})
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "operator/image:1" {
		t.Errorf("image = %s, want the operator's", c.Image)
	}
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("classic queue strategy = %s, want Recreate so two consumers never compete", dep.Spec.Strategy.Type)
	}
	// An empty auth mode is jwt, as the CRD defaults it; without a key source the bridge
	// refuses to start rather than serve every tenant.
	for _, a := range []string{"--auth-mode=jwt", "--queue=events.sse", "--queue-type=classic", "--dead-letter-exchange=events.sse.dlx", "--prefetch=1000"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args lack %s: %v", a, c.Args)
		}
	}
	if buildPodDisruptionBudget(es) != nil {
		t.Error("one replica needs no PodDisruptionBudget")
	}
}

func TestNoSecretValueInPodSpec(t *testing.T) {
	es := fullStream()
	secrets := map[string]map[string][]byte{
		"rabbitmq": {"uri": []byte(secretValue)},
		"jwt":      {"hmac": []byte("hmac-secret-value")},
	}
	digests := map[string]string{}
	for name, data := range secrets {
		digests[name] = secretDigest(data)
	}
	dep := buildDeployment(workloadInput{Stream: es, DefaultImage: "i", SecretDigests: digests})
	all, _ := json.Marshal(dep)
	for _, v := range []string{secretValue, "s3cr3t-passw0rd", "hmac-secret-value"} {
		if strings.Contains(string(all), v) {
			t.Errorf("the Deployment contains a secret value %q", v)
		}
	}
}

func TestConfigHashChangesOnlyWithConfiguration(t *testing.T) {
	hash := func(es *esv1.EventStream, digests map[string]string) string {
		return buildDeployment(workloadInput{Stream: es, DefaultImage: "i", SecretDigests: digests}).Spec.Template.Annotations[ConfigHashAnnotation]
	}
	base := hash(fullStream(), map[string]string{"rabbitmq": secretDigest(map[string][]byte{"uri": []byte("a")})})
	if again := hash(fullStream(), map[string]string{"rabbitmq": secretDigest(map[string][]byte{"uri": []byte("a")})}); again != base {
		t.Error("the same configuration hashed differently")
	}
	if h := hash(fullStream(), map[string]string{"rabbitmq": secretDigest(map[string][]byte{"uri": []byte("b")})}); h == base {
		t.Error("a changed Secret did not change the hash")
	}
	changed := fullStream()
	changed.Spec.Bridge.Heartbeat = &metav1.Duration{Duration: 30 * time.Second}
	if h := hash(changed, map[string]string{"rabbitmq": secretDigest(map[string][]byte{"uri": []byte("a")})}); h == base {
		t.Error("a changed spec did not change the hash")
	}
	unrelated := fullStream()
	unrelated.Spec.DeletionPolicy = esv1.DeletionPolicyRetain
	unrelated.Spec.Bridge.Service.Port = 1
	if h := hash(unrelated, map[string]string{"rabbitmq": secretDigest(map[string][]byte{"uri": []byte("a")})}); h != base {
		t.Error("a field the pods do not read rolled the pods")
	}
}

func TestBuildServiceAndPDB(t *testing.T) {
	es := fullStream()
	svc := buildService(es)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.Ports[0].Port != 8443 ||
		svc.Spec.Ports[0].TargetPort.StrVal != "http" || svc.Annotations["lb"] != "internal" {
		t.Errorf("service = %+v", svc.Spec)
	}
	if svc.Spec.Selector["app.kubernetes.io/instance"] != "jobs" {
		t.Errorf("selector = %v", svc.Spec.Selector)
	}
	pdb := buildPodDisruptionBudget(es)
	if pdb == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Fatalf("pdb = %+v", pdb)
	}
	if got := bridgeEndpoint(es); got != "http://jobs-bridge.apps.svc:8443/events" {
		t.Errorf("endpoint = %s", got)
	}
}

// TestBuildServiceAccountImagePullSecrets: the operator's --bridge-image-pull-secrets land on
// the bridge ServiceAccount, in order, and none means no imagePullSecrets at all.
func TestBuildServiceAccountImagePullSecrets(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pullSecrets []string
		want        []corev1.LocalObjectReference
	}{
		{name: "none", pullSecrets: nil, want: nil},
		{name: "one", pullSecrets: []string{"registry"}, want: []corev1.LocalObjectReference{{Name: "registry"}}},
		{name: "two in order", pullSecrets: []string{"b-registry", "a-mirror"},
			want: []corev1.LocalObjectReference{{Name: "b-registry"}, {Name: "a-mirror"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa := buildServiceAccount(fullStream(), tc.pullSecrets)
			if !slices.Equal(sa.ImagePullSecrets, tc.want) {
				t.Errorf("imagePullSecrets = %v, want %v", sa.ImagePullSecrets, tc.want)
			}
			if sa.Name != "jobs-bridge" || sa.Namespace != "apps" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Errorf("service account = %+v", sa)
			}
		})
	}
}

func TestParseBridgeMetrics(t *testing.T) {
	text := `# TYPE eventstream_bridge_clients gauge
eventstream_bridge_clients 7
# TYPE eventstream_bridge_events_delivered_total counter
eventstream_bridge_events_delivered_total 120
# TYPE eventstream_bridge_events_dropped_total counter
eventstream_bridge_events_dropped_total{reason="buffer_full"} 3
eventstream_bridge_events_dropped_total{reason="disconnect"} 2
# TYPE eventstream_bridge_broker_reconnects_total counter
eventstream_bridge_broker_reconnects_total 1
# TYPE eventstream_bridge_consumer_lag_messages gauge
eventstream_bridge_consumer_lag_messages 40
# TYPE eventstream_bridge_snapshot_keys gauge
eventstream_bridge_snapshot_keys 200
# TYPE eventstream_bridge_snapshot_bytes gauge
eventstream_bridge_snapshot_bytes 104448
`
	got, err := parseBridgeMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := BridgeFigures{Clients: 7, Delivered: 120, Dropped: 5, Reconnects: 1, LagMessages: 40, SnapshotKeys: 200, SnapshotBytes: 104448}
	if got != want {
		t.Errorf("figures = %+v, want %+v", got, want)
	}
	if _, err := parseBridgeMetrics(strings.NewReader("not metrics {")); err == nil {
		t.Error("garbage parsed without error")
	}
}

func TestBridgeCondition(t *testing.T) {
	dep := func(gen, observed int64, replicas, updated, ready, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Status: appsv1.DeploymentStatus{
			ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated, ReadyReplicas: ready, AvailableReplicas: available}}
	}
	tests := []struct {
		name   string
		dep    *appsv1.Deployment
		want   int32
		reason string
	}{
		{"available", dep(2, 2, 2, 2, 2, 2), 2, esv1.ReasonBridgeAvailable},
		{"not observed yet", dep(3, 2, 2, 2, 2, 2), 2, esv1.ReasonBridgeProgressing},
		{"rolling", dep(2, 2, 3, 1, 2, 2), 2, esv1.ReasonBridgeProgressing},
		{"unavailable", dep(2, 2, 2, 2, 1, 1), 2, esv1.ReasonBridgeUnavailable},
		{"scaled to zero", dep(2, 2, 0, 0, 0, 0), 0, esv1.ReasonBridgeAvailable},
	}
	for _, tt := range tests {
		if _, reason, _ := bridgeCondition(tt.dep, tt.want); reason != tt.reason {
			t.Errorf("%s: reason = %s, want %s", tt.name, reason, tt.reason)
		}
	}
}

func TestMetricsURL(t *testing.T) {
	pod := func(phase corev1.PodPhase, ip string, ready corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080}, {Name: BridgeMetricsPortName, ContainerPort: 9090}}}}},
			Status: corev1.PodStatus{Phase: phase, PodIP: ip,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}},
		}
	}
	if url, ok := metricsURL(pod(corev1.PodRunning, "10.0.0.7", corev1.ConditionTrue)); !ok || url != "http://10.0.0.7:9090/metrics" {
		t.Errorf("ready pod: %q %v", url, ok)
	}
	if _, ok := metricsURL(pod(corev1.PodRunning, "10.0.0.7", corev1.ConditionFalse)); !ok {
		t.Error("a running pod that is not ready (broker away) must still be scraped: its clients are connected")
	}
	if _, ok := metricsURL(pod(corev1.PodPending, "", corev1.ConditionFalse)); ok {
		t.Error("a pending pod without an IP was scraped")
	}
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// On a stream queue the snapshot's age is capped to the stream's retention, so that a
// restarted replica, which rebuilds from what the stream retains, serves what the others do.
func TestSnapshotMaxAge(t *testing.T) {
	for _, tt := range []struct {
		name      string
		queueType esv1.QueueType
		ttl, age  *metav1.Duration
		want      time.Duration
	}{
		{"classic, default", esv1.QueueTypeClassic, nil, nil, 24 * time.Hour},
		{"classic keeps a long age", esv1.QueueTypeClassic, &metav1.Duration{Duration: time.Minute}, &metav1.Duration{Duration: 48 * time.Hour}, 48 * time.Hour},
		{"classic without an age bound", esv1.QueueTypeClassic, nil, &metav1.Duration{}, 0},
		{"stream, default age capped to the default TTL", esv1.QueueTypeStream, nil, nil, 10 * time.Minute},
		{"stream, age within the TTL", esv1.QueueTypeStream, &metav1.Duration{Duration: 2 * time.Hour}, &metav1.Duration{Duration: time.Hour}, time.Hour},
		{"stream without an age bound: the TTL", esv1.QueueTypeStream, &metav1.Duration{Duration: 2 * time.Hour}, &metav1.Duration{}, 2 * time.Hour},
	} {
		es := &esv1.EventStream{Spec: esv1.EventStreamSpec{
			Queue:  esv1.QueueSpec{Type: tt.queueType, MessageTTL: tt.ttl},
			Bridge: esv1.BridgeSpec{Snapshot: &esv1.SnapshotSpec{MaxAge: tt.age}},
		}}
		if got := snapshotMaxAge(es); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
