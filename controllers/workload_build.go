package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Ports, paths and names of the bridge pods. The bridge serves SSE on the http port and
// /metrics, /healthz and /readyz on the metrics port.
const (
	bridgeHTTPPortName = "http"
	// BridgeMetricsPortName is the container port the operator scrapes.
	BridgeMetricsPortName = "metrics"
	bridgeContainerName   = "bridge"
	bridgeBinary          = "/bridge"

	// ConfigHashAnnotation on the pod template changes exactly when the bridge's effective
	// configuration does: the spec fields it reads and the contents of the Secrets it uses.
	ConfigHashAnnotation = "sse.eventstream.dev/config-hash"

	// LabelStream names the EventStream a child object belongs to.
	LabelStream = "sse.eventstream.dev/stream"
	// LabelManagedBy marks every object the operator creates; its caches select on it.
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	managedByValue      = "eventstream-operator"
	bridgeComponentName = "eventstream-bridge"

	envJWTHS256Secrets = "BRIDGE_AUTH_HS256_SECRETS"
	caMountDir         = "/etc/eventstream/tls"
	jwtKeyMountDir     = "/etc/eventstream/jwt"

	// bridgeDrainTimeout is the bridge's --drain-timeout; the pod's grace period leaves
	// room beyond it for the AMQP channel to close.
	bridgeDrainTimeout = 20 * time.Second
	bridgeGracePeriod  = int64(35)
	// bridgeUID is the non-root user of the image (distroless nonroot).
	bridgeUID = int64(65532)
)

// workloadInput is everything the bridge's child objects are built from.
type workloadInput struct {
	Stream *esv1.EventStream
	// DefaultImage runs the bridge unless the stream names its own image.
	DefaultImage string
	// SecretDigests are digests of the contents of the Secrets the pods use, by name, so that
	// a changed Secret rolls the pods.
	SecretDigests map[string]string
}

// bridgeName names the Deployment, Service, ServiceAccount and PodDisruptionBudget.
func bridgeName(es *esv1.EventStream) string { return es.Name + "-bridge" }

func bridgeSelector(es *esv1.EventStream) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     bridgeComponentName,
		"app.kubernetes.io/instance": es.Name,
	}
}

func bridgeLabels(es *esv1.EventStream) map[string]string {
	labels := bridgeSelector(es)
	labels[LabelManagedBy] = managedByValue
	labels[LabelStream] = es.Name
	labels["app.kubernetes.io/component"] = "bridge"
	return labels
}

func childMeta(es *esv1.EventStream) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: bridgeName(es), Namespace: es.Namespace, Labels: bridgeLabels(es)}
}

// buildServiceAccount returns the bridge's ServiceAccount; the bridge needs no API access,
// so its token is not mounted. pullSecrets (the operator's --bridge-image-pull-secrets) name
// Secrets in the stream's namespace that the kubelet uses to pull the bridge image.
func buildServiceAccount(es *esv1.EventStream, pullSecrets []string) *corev1.ServiceAccount {
	no := false
	sa := &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   childMeta(es),
		AutomountServiceAccountToken: &no,
	}
	for _, name := range pullSecrets {
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
	}
	return sa
}

// buildService exposes the bridge's SSE port with the spec's type, port and annotations.
func buildService(es *esv1.EventStream) *corev1.Service {
	svc := es.Spec.Bridge.Service
	meta := childMeta(es)
	meta.Annotations = svc.Annotations
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     serviceType(svc.Type),
			Selector: bridgeSelector(es),
			Ports: []corev1.ServicePort{{
				Name: bridgeHTTPPortName, Port: servicePort(svc.Port), Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromString(bridgeHTTPPortName),
			}},
		},
	}
}

// buildPodDisruptionBudget keeps all but one bridge replica up during voluntary
// disruptions; it returns nil when there is at most one replica.
func buildPodDisruptionBudget(es *esv1.EventStream) *policyv1.PodDisruptionBudget {
	if replicas(es) <= 1 {
		return nil
	}
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: childMeta(es),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &one,
			Selector:       &metav1.LabelSelector{MatchLabels: bridgeSelector(es)},
		},
	}
}

// buildDeployment returns the bridge Deployment. Credentials reach the pod only as env from
// secretKeyRef or as Secret volumes, never in args. Classic and quorum queues get one
// replica and the Recreate strategy, so two consumers never compete for the queue; streams
// roll with no unavailable pod.
func buildDeployment(in workloadInput) *appsv1.Deployment {
	es := in.Stream
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: bridgeLabels(es), Annotations: maps.Clone(es.Spec.Bridge.PodAnnotations)},
		Spec:       buildPodSpec(in),
	}
	if template.Annotations == nil {
		template.Annotations = map[string]string{}
	}
	template.Annotations[ConfigHashAnnotation] = configHash(template.Spec, in.SecretDigests)

	strategy := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if es.Spec.Queue.Type == esv1.QueueTypeStream {
		zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
		strategy = appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &one},
		}
	}
	n := replicas(es)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: childMeta(es),
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: bridgeSelector(es)},
			Strategy: strategy,
			Template: template,
		},
	}
}

func buildPodSpec(in workloadInput) corev1.PodSpec {
	es := in.Stream
	yes, no := true, false
	uid := bridgeUID
	grace := bridgeGracePeriod
	env := []corev1.EnvVar{{
		Name: contract.EnvRabbitMQURL,
		ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: es.Spec.RabbitMQ.ConnectionSecret, Key: secretKeyURI,
		}},
	}}
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	if tls := es.Spec.RabbitMQ.TLS; tls != nil {
		volumes = append(volumes, secretVolume("tls-ca", tls.CASecret.Name))
		mounts = append(mounts, corev1.VolumeMount{Name: "tls-ca", MountPath: caMountDir, ReadOnly: true})
	}
	if jwt := es.Spec.Bridge.Auth.JWT; es.Spec.Bridge.Auth.Mode != esv1.AuthModeNone && jwt != nil {
		if jwt.SecretRef != nil {
			env = append(env, corev1.EnvVar{Name: envJWTHS256Secrets, ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: jwt.SecretRef.Name}, Key: keyOr(jwt.SecretRef.Key, esv1.DefaultHS256SecretKey),
				},
			}})
		}
		if jwt.PublicKeySecretRef != nil {
			volumes = append(volumes, secretVolume("jwt-key", jwt.PublicKeySecretRef.Name))
			mounts = append(mounts, corev1.VolumeMount{Name: "jwt-key", MountPath: jwtKeyMountDir, ReadOnly: true})
		}
	}
	// The Go runtime keeps the heap under 90 % of the container's memory limit (collecting
	// more often near it) instead of letting the GC's headroom (about 2x the live heap) reach
	// the limit and the OOM killer.
	if limit := es.Spec.Bridge.Resources.Limits.Memory(); !limit.IsZero() {
		env = append(env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(limit.Value()*9/10, 10)})
	}
	env = append(env, streamEnv(es.Spec.Bridge.Env)...)
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(BridgeMetricsPortName),
			}},
			PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	return corev1.PodSpec{
		ServiceAccountName:            bridgeName(es),
		AutomountServiceAccountToken:  &no,
		TerminationGracePeriodSeconds: &grace,
		NodeSelector:                  es.Spec.Bridge.NodeSelector,
		Tolerations:                   es.Spec.Bridge.Tolerations,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Volumes: volumes,
		Containers: []corev1.Container{{
			Name:    bridgeContainerName,
			Image:   orDefault(es.Spec.Bridge.Image, in.DefaultImage),
			Command: []string{bridgeBinary},
			Args:    bridgeArgs(es),
			Env:     env,
			Ports: []corev1.ContainerPort{
				{Name: bridgeHTTPPortName, ContainerPort: contract.HTTPPort, Protocol: corev1.ProtocolTCP},
				{Name: BridgeMetricsPortName, ContainerPort: contract.MetricsPort, Protocol: corev1.ProtocolTCP},
			},
			ReadinessProbe: probe("/readyz", 5),
			LivenessProbe:  probe("/healthz", 10),
			Resources:      es.Spec.Bridge.Resources,
			VolumeMounts:   mounts,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no,
				ReadOnlyRootFilesystem:   &yes,
				RunAsNonRoot:             &yes,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		}},
	}
}

// bridgeArgs translates the spec into the bridge's flags (docs/bridge.md). No credential is
// ever an argument.
func bridgeArgs(es *esv1.EventStream) []string {
	spec := es.Spec
	topo := desiredTopology(es)
	b := spec.Bridge
	args := []string{
		contract.Arg(contract.FlagExchange, topo.Exchange),
		contract.Arg(contract.FlagQueue, topo.Queue),
		contract.Arg(contract.FlagQueueType, topo.QueueType),
		contract.Arg(contract.FlagPrefetch, strconv.Itoa(int(orDefault(spec.Consumer.Prefetch, contract.DefaultPrefetch)))),
		contract.Arg(contract.FlagListen, contract.ListenAddress(contract.HTTPPort)),
		contract.Arg(contract.FlagMetricsListen, contract.ListenAddress(contract.MetricsPort)),
		contract.Arg(contract.FlagPath, bridgePath(es)),
		contract.Arg(contract.FlagRoutingKeyTemplate, orDefault(b.RoutingKeyTemplate, contract.DefaultRoutingKeyTemplate)),
		contract.Arg(contract.FlagTenantParam, orDefault(b.TenantPlaceholder, contract.DefaultTenantParam)),
		contract.Arg(contract.FlagHeartbeat, durationOr(b.Heartbeat, contract.DefaultHeartbeat).String()),
		contract.Arg(contract.FlagBufferSize, strconv.Itoa(int(orDefault(b.Buffer.Size, contract.DefaultBufferSize)))),
		contract.Arg(contract.FlagOverflow, string(orDefault(b.Buffer.Overflow, contract.DefaultOverflow))),
		contract.Arg(contract.FlagReplaySize, strconv.Itoa(int(orDefault(b.Replay.Size, contract.DefaultReplaySize)))),
		contract.Arg(contract.FlagMaxConnections, strconv.Itoa(int(orDefault(b.Limits.MaxConnections, contract.DefaultMaxConnections)))),
		contract.Arg(contract.FlagMaxConnectionsPerTenant, strconv.Itoa(int(orDefault(b.Limits.MaxConnectionsPerTenant, contract.DefaultMaxConnectionsPerTenant)))),
		contract.Arg(contract.FlagMaxConnectionsPerSubject, strconv.Itoa(int(orDefault(b.Limits.MaxConnectionsPerSubject, contract.DefaultMaxConnectionsPerSubject)))),
		contract.Arg(contract.FlagDrainTimeout, bridgeDrainTimeout.String()),
		contract.Arg(contract.FlagLogFormat, "json"),
	}
	if topo.DeadLetterExchange != "" {
		args = append(args, contract.Arg(contract.FlagDeadLetterExchange, topo.DeadLetterExchange))
	}
	if snap := b.Snapshot; snap != nil {
		maxBytes := int64(contract.DefaultSnapshotMaxBytes)
		if snap.MaxBytes != nil {
			maxBytes = snap.MaxBytes.Value()
		}
		args = append(args,
			contract.Arg(contract.FlagSnapshotMaxKeys, strconv.Itoa(int(orDefault(ptrValue(snap.MaxKeys), contract.DefaultSnapshotMaxKeys)))),
			contract.Arg(contract.FlagSnapshotMaxBytes, strconv.FormatInt(maxBytes, 10)),
			contract.Arg(contract.FlagSnapshotMaxAge, snapshotMaxAge(es).String()))
	}
	// A stream replica that lost the broker ends its streams so that clients move to another
	// replica. With one replica there is none: behind an ingress the reconnect would meet a
	// 502/503, which a browser's EventSource treats as final. Keep the streams open instead.
	if topo.QueueType == string(esv1.QueueTypeStream) && replicas(es) <= 1 {
		args = append(args, contract.Arg(contract.FlagBrokerLostGrace, "0"))
	}
	if tls := spec.RabbitMQ.TLS; tls != nil {
		args = append(args, contract.Arg(contract.FlagAMQPCAFile, caMountDir+"/"+keyOr(tls.CASecret.Key, esv1.DefaultCAKey)))
	}
	if len(b.CORS.AllowedOrigins) > 0 {
		args = append(args, contract.Arg(contract.FlagCORSAllowedOrigins, strings.Join(b.CORS.AllowedOrigins, ",")))
	}
	jwt := b.Auth.JWT
	// An empty mode is jwt, as the CRD defaults it: only none written out turns auth off.
	if b.Auth.Mode == esv1.AuthModeNone {
		return append(args, contract.Arg(contract.FlagAuthMode, string(esv1.AuthModeNone)))
	}
	// Without settings (the API server rejects that) the bridge refuses to start rather
	// than serve every tenant.
	args = append(args, contract.Arg(contract.FlagAuthMode, string(esv1.AuthModeJWT)))
	if jwt == nil {
		return args
	}
	switch {
	case jwt.SecretRef != nil:
		args = append(args, contract.Arg(contract.FlagAuthHS256SecretEnv, envJWTHS256Secrets))
	case jwt.JWKSURL != "":
		args = append(args, contract.Arg(contract.FlagAuthJWKSURL, jwt.JWKSURL))
	case jwt.PublicKeySecretRef != nil:
		args = append(args, contract.Arg(contract.FlagAuthPublicKeyFile, jwtKeyMountDir+"/"+keyOr(jwt.PublicKeySecretRef.Key, esv1.DefaultPublicKeyKey)))
	}
	if len(jwt.Algorithms) > 0 {
		algs := make([]string, 0, len(jwt.Algorithms))
		for _, a := range jwt.Algorithms {
			algs = append(algs, string(a))
		}
		args = append(args, contract.Arg(contract.FlagAuthAlgorithms, strings.Join(algs, ",")))
	}
	if jwt.Audience != "" {
		args = append(args, contract.Arg(contract.FlagAuthAudience, jwt.Audience))
	}
	if jwt.Issuer != "" {
		args = append(args, contract.Arg(contract.FlagAuthIssuer, jwt.Issuer))
	}
	args = append(args,
		contract.Arg(contract.FlagAuthTenantsClaim, orDefault(jwt.TenantsClaim, contract.DefaultTenantsClaim)),
		contract.Arg(contract.FlagAuthRequiredScope, orDefault(jwt.RequiredScope, contract.DefaultRequiredScope)))
	if jwt.Cookie != "" {
		args = append(args, contract.Arg(contract.FlagAuthCookie, jwt.Cookie))
	}
	return args
}

// referencedSecrets lists, sorted, the Secrets a stream uses: the operator reads the
// connection and CA Secrets, the bridge pods read those and the JWT key Secrets. Their
// contents are part of the configuration hash, and a change to any of them is watched.
func referencedSecrets(es *esv1.EventStream) []string {
	names := []string{es.Spec.RabbitMQ.ConnectionSecret.Name}
	if tls := es.Spec.RabbitMQ.TLS; tls != nil {
		names = append(names, tls.CASecret.Name)
	}
	if jwt := es.Spec.Bridge.Auth.JWT; es.Spec.Bridge.Auth.Mode != esv1.AuthModeNone && jwt != nil {
		if jwt.SecretRef != nil {
			names = append(names, jwt.SecretRef.Name)
		}
		if jwt.PublicKeySecretRef != nil {
			names = append(names, jwt.PublicKeySecretRef.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// secretDigest digests a Secret's data (keys sorted); the digest reveals nothing of it.
func secretDigest(data map[string][]byte) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "%s=%d:", k, len(data[k]))
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// configHash digests the pod spec and the Secret digests.
func configHash(pod corev1.PodSpec, secretDigests map[string]string) string {
	podJSON, _ := json.Marshal(pod) // a PodSpec always marshals
	h := sha256.New()
	h.Write(podJSON)
	for _, k := range slices.Sorted(maps.Keys(secretDigests)) {
		fmt.Fprintf(h, "\x00%s=%s", k, secretDigests[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// bridgeEndpoint is the in-cluster URL of the stream.
func bridgeEndpoint(es *esv1.EventStream) string {
	return fmt.Sprintf("http://%s.%s.svc:%d%s", bridgeName(es), es.Namespace,
		servicePort(es.Spec.Bridge.Service.Port), bridgePath(es))
}

// bridgePath is the HTTP path the bridge serves the stream on.
func bridgePath(es *esv1.EventStream) string {
	return orDefault(es.Spec.Bridge.Path, contract.DefaultPath)
}

func secretVolume(name, secretName string) corev1.Volume {
	mode := int32(0o440)
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: secretName, DefaultMode: &mode,
	}}}
}

func replicas(es *esv1.EventStream) int32 {
	if es.Spec.Bridge.Replicas == nil {
		return contract.DefaultReplicas
	}
	return *es.Spec.Bridge.Replicas
}

func serviceType(t corev1.ServiceType) corev1.ServiceType {
	return orDefault(t, contract.DefaultServiceType)
}

func servicePort(p int32) int32 { return orDefault(p, contract.DefaultServicePort) }

func keyOr(key, def string) string { return orDefault(key, def) }

// snapshotMaxAge is spec.bridge.snapshot.maxAge (default 24h), at most the stream's retention
// (queue.messageTTL) on a stream queue: a replica that restarts rebuilds its store from what
// the stream retains, so a longer age would let replicas serve different snapshots.
func snapshotMaxAge(es *esv1.EventStream) time.Duration {
	age := durationOr(es.Spec.Bridge.Snapshot.MaxAge, contract.DefaultSnapshotMaxAge)
	if es.Spec.Queue.Type != esv1.QueueTypeStream {
		return age
	}
	retention := durationOr(es.Spec.Queue.MessageTTL, contract.DefaultMessageTTL)
	if age == 0 || age > retention {
		return retention
	}
	return age
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// streamEnv returns the stream's spec.bridge.env for the bridge container, to follow the
// operator's own variables. Names the operator owns (operatorOwnsEnv) are dropped: the CRD
// refuses them, and this keeps an object stored before that rule from overriding the
// connection Secret, the JWT key or the memory limit.
func streamEnv(env []corev1.EnvVar) []corev1.EnvVar {
	kept := make([]corev1.EnvVar, 0, len(env))
	for _, e := range env {
		if !operatorOwnsEnv(e.Name) {
			kept = append(kept, e)
		}
	}
	return kept
}

// operatorOwnsEnv reports whether the operator sets the bridge variable name from the spec
// (RABBITMQ_*, BRIDGE_*, GOMEMLIMIT); the CRD's rule on spec.bridge.env says the same.
func operatorOwnsEnv(name string) bool {
	return strings.HasPrefix(name, "RABBITMQ_") || strings.HasPrefix(name, "BRIDGE_") || name == "GOMEMLIMIT"
}
