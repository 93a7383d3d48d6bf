package controllers

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/bridge/app"
	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/cors"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// bridgeRun is what one bridge pod is given: its pod spec, and its command line parsed by the
// bridge binary's own flag set (cmd/bridge: app, auth and CORS flags).
type bridgeRun struct {
	pod  corev1.PodSpec
	app  *app.Config
	auth *auth.Config
	cors *cors.Config
}

// parseBridgeArgs parses args as the bridge binary does, with RABBITMQ_URL set as the pod
// sets it from the connection Secret.
func parseBridgeArgs(args []string) (bridgeRun, error) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := bridgeRun{
		app: app.BindFlags(fs, func(key string) string {
			if key == contract.EnvRabbitMQURL {
				return "amqp://user:pass@rabbitmq:5672/"
			}
			return ""
		}),
		auth: &auth.Config{}, cors: &cors.Config{},
	}
	auth.RegisterFlags(fs, run.auth)
	cors.RegisterFlags(fs, run.cors)
	return run, fs.Parse(args)
}

// specField says how one field of EventStreamSpec reaches the bridge. Exactly one is set.
type specField struct {
	// bridge returns what the bridge was given for the field and what the spec asks for (the
	// contract's default when the field is unset); ok is false when the field does not apply
	// to es.
	bridge func(es *esv1.EventStream, run bridgeRun) (got, want any, ok bool)
	// elsewhere says where a field that the bridge is not given goes instead.
	elsewhere string
}

// always marks a check that applies to every stream.
func always(got, want any) (any, any, bool) { return got, want, true }

// withJWT applies a check to streams whose bridge authenticates with JWT settings.
func withJWT(es *esv1.EventStream, check func(jwt *esv1.JWTAuthSpec) (got, want any)) (any, any, bool) {
	jwt := es.Spec.Bridge.Auth.JWT
	if es.Spec.Bridge.Auth.Mode == esv1.AuthModeNone || jwt == nil {
		return nil, nil, false
	}
	got, want := check(jwt)
	return got, want, true
}

// specFields lists every field of EventStreamSpec (by JSON path below spec) with how it
// reaches the bridge. TestEverySpecFieldIsMapped fails when a field is missing here.
var specFields = map[string]specField{
	"rabbitmq.connectionSecret": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		secret, _ := envFromSecret(r.pod, contract.EnvRabbitMQURL)
		return always(secret, es.Spec.RabbitMQ.ConnectionSecret.Name)
	}},
	"rabbitmq.tls.caSecret.name": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		want := ""
		if tls := es.Spec.RabbitMQ.TLS; tls != nil {
			want = tls.CASecret.Name
		}
		return always(secretMountedAt(r.pod, r.app.AMQPCAFile), want)
	}},
	"rabbitmq.tls.caSecret.key": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		want := ""
		if tls := es.Spec.RabbitMQ.TLS; tls != nil {
			want = orDefault(tls.CASecret.Key, esv1.DefaultCAKey)
		}
		return always(fileName(r.app.AMQPCAFile), want)
	}},
	"exchange.name": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.Exchange, orDefault(string(es.Spec.Exchange.Name), contract.DefaultExchange))
	}},
	"exchange.deleteWhenUnused": {elsewhere: "the operator's deletion of the exchange"},
	"queue.name": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.Queue, orDefault(string(es.Spec.Queue.Name), contract.DefaultQueue))
	}},
	"queue.type": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.QueueType, orDefault(string(es.Spec.Queue.Type), contract.DefaultQueueType))
	}},
	"queue.messageTTL":     {elsewhere: "the operator's policy (message-ttl or max-age)"},
	"queue.maxLength":      {elsewhere: "the operator's policy (max-length)"},
	"queue.maxLengthBytes": {elsewhere: "the operator's policy (max-length-bytes)"},
	"queue.deadLetter.enabled": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		want := ""
		if enabled := es.Spec.Queue.DeadLetter.Enabled; enabled == nil && contract.DefaultDeadLetter || enabled != nil && *enabled {
			want = contract.DeadLetterExchange(orDefault(string(es.Spec.Queue.Name), contract.DefaultQueue))
		}
		return always(r.app.DeadLetterExch, want)
	}},
	"bindingKeys": {elsewhere: "the operator's bindings of the queue"},
	"consumer.prefetch": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.Prefetch, int(orDefault(es.Spec.Consumer.Prefetch, contract.DefaultPrefetch)))
	}},
	"bridge.replicas": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		// One stream replica keeps its streams open while the broker is away; with more, a
		// replica that lost the broker ends them so that clients move to another.
		want := bridgeDefaults(nil).app.BrokerLostGrace
		if es.Spec.Queue.Type == esv1.QueueTypeStream && replicas(es) <= 1 {
			want = 0
		}
		return always(r.app.BrokerLostGrace, want)
	}},
	"bridge.image": {elsewhere: "the bridge container's image"},
	"bridge.path": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.Path, orDefault(es.Spec.Bridge.Path, contract.DefaultPath))
	}},
	"bridge.routingKeyTemplate": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.RoutingKeyTemplate, orDefault(es.Spec.Bridge.RoutingKeyTemplate, contract.DefaultRoutingKeyTemplate))
	}},
	"bridge.tenantPlaceholder": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.TenantParam, orDefault(es.Spec.Bridge.TenantPlaceholder, contract.DefaultTenantParam))
	}},
	"bridge.auth.mode": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.auth.Mode, orDefault(string(es.Spec.Bridge.Auth.Mode), contract.DefaultAuthMode))
	}},
	"bridge.auth.jwt.secretRef.name": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) {
			secret, _ := envFromSecret(r.pod, r.auth.HS256SecretEnv)
			if jwt.SecretRef == nil {
				return secret, ""
			}
			return secret, jwt.SecretRef.Name
		})
	}},
	"bridge.auth.jwt.secretRef.key": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) {
			_, key := envFromSecret(r.pod, r.auth.HS256SecretEnv)
			if jwt.SecretRef == nil {
				return key, ""
			}
			return key, orDefault(jwt.SecretRef.Key, esv1.DefaultHS256SecretKey)
		})
	}},
	"bridge.auth.jwt.jwksURL": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) { return r.auth.JWKSURL, jwt.JWKSURL })
	}},
	"bridge.auth.jwt.publicKeySecretRef.name": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) {
			if jwt.PublicKeySecretRef == nil {
				return secretMountedAt(r.pod, r.auth.PublicKeyFile), ""
			}
			return secretMountedAt(r.pod, r.auth.PublicKeyFile), jwt.PublicKeySecretRef.Name
		})
	}},
	"bridge.auth.jwt.publicKeySecretRef.key": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) {
			if jwt.PublicKeySecretRef == nil {
				return fileName(r.auth.PublicKeyFile), ""
			}
			return fileName(r.auth.PublicKeyFile), orDefault(jwt.PublicKeySecretRef.Key, esv1.DefaultPublicKeyKey)
		})
	}},
	"bridge.auth.jwt.algorithms": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) {
			want := []string{}
			for _, a := range jwt.Algorithms {
				want = append(want, string(a))
			}
			return fmt.Sprint(r.auth.Algorithms), fmt.Sprint(want)
		})
	}},
	"bridge.auth.jwt.audience": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) { return strings.Join(r.auth.Audience, ","), jwt.Audience })
	}},
	"bridge.auth.jwt.issuer": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) { return r.auth.Issuer, jwt.Issuer })
	}},
	"bridge.auth.jwt.tenantsClaim": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		want := contract.DefaultTenantsClaim
		if jwt := es.Spec.Bridge.Auth.JWT; jwt != nil && es.Spec.Bridge.Auth.Mode != esv1.AuthModeNone {
			want = orDefault(jwt.TenantsClaim, want)
		}
		return always(r.auth.TenantsClaim, want)
	}},
	"bridge.auth.jwt.requiredScope": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		want := contract.DefaultRequiredScope
		if jwt := es.Spec.Bridge.Auth.JWT; jwt != nil && es.Spec.Bridge.Auth.Mode != esv1.AuthModeNone {
			want = orDefault(jwt.RequiredScope, want)
		}
		return always(r.auth.RequiredScope, want)
	}},
	"bridge.auth.jwt.cookie": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return withJWT(es, func(jwt *esv1.JWTAuthSpec) (any, any) { return r.auth.Cookie, jwt.Cookie })
	}},
	"bridge.heartbeat": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.Heartbeat, durationOr(es.Spec.Bridge.Heartbeat, contract.DefaultHeartbeat))
	}},
	"bridge.buffer.size": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.BufferSize, int(orDefault(es.Spec.Bridge.Buffer.Size, contract.DefaultBufferSize)))
	}},
	"bridge.buffer.overflow": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.Overflow, orDefault(string(es.Spec.Bridge.Buffer.Overflow), contract.DefaultOverflow))
	}},
	"bridge.replay.size": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.ReplaySize, int(orDefault(es.Spec.Bridge.Replay.Size, contract.DefaultReplaySize)))
	}},
	"bridge.limits.maxConnections": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.MaxConnections, int(orDefault(es.Spec.Bridge.Limits.MaxConnections, contract.DefaultMaxConnections)))
	}},
	"bridge.limits.maxConnectionsPerTenant": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.MaxConnectionsPerTenant, int(orDefault(es.Spec.Bridge.Limits.MaxConnectionsPerTenant, contract.DefaultMaxConnectionsPerTenant)))
	}},
	"bridge.limits.maxConnectionsPerSubject": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(r.app.MaxConnectionsPerSubject, int(orDefault(es.Spec.Bridge.Limits.MaxConnectionsPerSubject, contract.DefaultMaxConnectionsPerSubject)))
	}},
	"bridge.cors.allowedOrigins": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		return always(strings.Join(r.cors.AllowedOrigins, ","), strings.Join(es.Spec.Bridge.CORS.AllowedOrigins, ","))
	}},
	"bridge.snapshot.maxKeys": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		want := 0 // no snapshot: off
		if s := es.Spec.Bridge.Snapshot; s != nil {
			want = int(orDefault(ptrValue(s.MaxKeys), contract.DefaultSnapshotMaxKeys))
		}
		return always(r.app.SnapshotMaxKeys, want)
	}},
	"bridge.snapshot.maxBytes": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		s := es.Spec.Bridge.Snapshot
		if s == nil {
			return nil, nil, false
		}
		want := int64(contract.DefaultSnapshotMaxBytes)
		if s.MaxBytes != nil {
			want = s.MaxBytes.Value()
		}
		return always(int64(r.app.SnapshotMaxBytes), want)
	}},
	"bridge.snapshot.maxAge": {bridge: func(es *esv1.EventStream, r bridgeRun) (any, any, bool) {
		if es.Spec.Bridge.Snapshot == nil {
			return nil, nil, false
		}
		// snapshotMaxAge caps it at the stream's retention on a stream queue.
		return always(r.app.SnapshotMaxAge, snapshotMaxAge(es))
	}},
	"bridge.resources":           {elsewhere: "the bridge container's resources and GOMEMLIMIT"},
	"bridge.nodeSelector":        {elsewhere: "the bridge pods' node selector"},
	"bridge.tolerations":         {elsewhere: "the bridge pods' tolerations"},
	"bridge.podAnnotations":      {elsewhere: "the bridge pods' annotations"},
	"bridge.env":                 {elsewhere: "the bridge container's environment"},
	"bridge.service.type":        {elsewhere: "the bridge Service"},
	"bridge.service.port":        {elsewhere: "the bridge Service"},
	"bridge.service.annotations": {elsewhere: "the bridge Service"},
	"deletionPolicy":             {elsewhere: "the operator's finalizer"},
}

// contractStreams vary every field the bridge is given: each such field takes at least two
// values over them, so a field the operator drops or hard-codes fails a check.
func contractStreams() map[string]*esv1.EventStream {
	jwks := fullStream()
	jwks.Spec.Queue = esv1.QueueSpec{Name: "jwks.events", Type: esv1.QueueTypeStream}
	jwks.Spec.Bridge.Replicas = ptr(int32(1))
	jwks.Spec.RabbitMQ.TLS = nil
	jwks.Spec.Bridge.Auth.JWT = &esv1.JWTAuthSpec{JWKSURL: "https://idp.example/jwks"}
	jwks.Spec.Bridge.Snapshot = &esv1.SnapshotSpec{} // the defaults, maxAge capped at the retention

	publicKey := fullStream()
	publicKey.Spec.RabbitMQ.TLS = &esv1.TLSSpec{CASecret: esv1.CASecretReference{Name: "ca"}}
	publicKey.Spec.Bridge.Auth.JWT = &esv1.JWTAuthSpec{PublicKeySecretRef: &esv1.PublicKeySecretReference{Name: "jwt-public"}}
	publicKey.Spec.Queue.Type = esv1.QueueTypeClassic // snapshot.maxAge is not capped at the retention

	return map[string]*esv1.EventStream{
		"every field set, HS256": fullStream(),
		"nothing set":            {Spec: esv1.EventStreamSpec{Bridge: esv1.BridgeSpec{Auth: esv1.BridgeAuthSpec{Mode: esv1.AuthModeNone}}}},
		"JWKS, one stream replica, dead-lettering by default":  jwks,
		"public key and CA from Secrets by their default keys": publicKey,
	}
}

// TestBridgeParsesTheOperatorsArgs is the contract between the operator and the bridge: the
// args the operator generates parse with the bridge's own flag set and pass its validation
// (a renamed or removed flag fails here, not in e2e), and every EventStream field the bridge
// is given lands in its configuration, with the contract's default when the field is unset.
func TestBridgeParsesTheOperatorsArgs(t *testing.T) {
	wants := map[string]map[string]bool{}
	for name, es := range contractStreams() {
		pod := buildPodSpec(workloadInput{Stream: es})
		args := pod.Containers[0].Args
		run, err := parseBridgeArgs(args)
		if err != nil {
			t.Fatalf("%s: the bridge refuses the operator's args: %v\nargs: %q", name, err, args)
		}
		if err := run.app.Validate(); err != nil {
			t.Errorf("%s: the bridge's validation refuses the operator's args: %v\nargs: %q", name, err, args)
		}
		run.pod = pod
		for _, field := range slices.Sorted(maps.Keys(specFields)) {
			if specFields[field].bridge == nil {
				continue
			}
			got, want, ok := specFields[field].bridge(es, run)
			if !ok {
				continue
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: spec.%s: the bridge got %v, the spec says %v", name, field, got, want)
			}
			if wants[field] == nil {
				wants[field] = map[string]bool{}
			}
			wants[field][fmt.Sprint(want)] = true
		}
	}
	for field, m := range specFields {
		if m.bridge != nil && len(wants[field]) < 2 {
			t.Errorf("spec.%s takes %d value(s) over contractStreams; give it another so that the check can fail", field, len(wants[field]))
		}
	}
}

// TestEverySpecFieldIsMapped: a field added to EventStreamSpec must say in specFields how it
// reaches the bridge (a check) or where else it goes.
func TestEverySpecFieldIsMapped(t *testing.T) {
	fields := specLeaves("", reflect.TypeFor[esv1.EventStreamSpec]())
	for _, f := range fields {
		if _, ok := specFields[f]; !ok {
			t.Errorf("spec.%s is not in specFields: add a check that the bridge gets it, or say where it goes", f)
		}
	}
	for f, m := range specFields {
		if !slices.Contains(fields, f) {
			t.Errorf("specFields lists spec.%s, which EventStreamSpec does not have", f)
		}
		if (m.bridge == nil) == (m.elsewhere == "") {
			t.Errorf("spec.%s: set exactly one of bridge and elsewhere", f)
		}
	}
}

// TestBridgeDefaultsAreTheContracts: the bridge started without a flag applies the same
// defaults as the operator and the CRD.
func TestBridgeDefaultsAreTheContracts(t *testing.T) {
	run := bridgeDefaults(t)
	for name, c := range map[string][2]any{
		"exchange":     {run.app.Exchange, contract.DefaultExchange},
		"queue":        {run.app.Queue, contract.DefaultQueue},
		"queue type":   {run.app.QueueType, contract.DefaultQueueType},
		"prefetch":     {run.app.Prefetch, contract.DefaultPrefetch},
		"listen":       {run.app.Listen, contract.ListenAddress(contract.HTTPPort)},
		"metrics":      {run.app.MetricsListen, contract.ListenAddress(contract.MetricsPort)},
		"path":         {run.app.Path, contract.DefaultPath},
		"template":     {run.app.RoutingKeyTemplate, contract.DefaultRoutingKeyTemplate},
		"tenant":       {run.app.TenantParam, contract.DefaultTenantParam},
		"heartbeat":    {run.app.Heartbeat, contract.DefaultHeartbeat},
		"buffer":       {run.app.BufferSize, contract.DefaultBufferSize},
		"overflow":     {run.app.Overflow, contract.DefaultOverflow},
		"replay":       {run.app.ReplaySize, contract.DefaultReplaySize},
		"connections":  {run.app.MaxConnections, contract.DefaultMaxConnections},
		"per tenant":   {run.app.MaxConnectionsPerTenant, contract.DefaultMaxConnectionsPerTenant},
		"per subject":  {run.app.MaxConnectionsPerSubject, contract.DefaultMaxConnectionsPerSubject},
		"auth mode":    {run.auth.Mode, contract.DefaultAuthMode},
		"tenant claim": {run.auth.TenantsClaim, contract.DefaultTenantsClaim},
		"scope":        {run.auth.RequiredScope, contract.DefaultRequiredScope},
	} {
		if c[0] != c[1] {
			t.Errorf("%s: the bridge defaults to %v, the contract to %v", name, c[0], c[1])
		}
	}
}

// bridgeDefaults is the bridge's configuration without flags; t may be nil outside a test.
func bridgeDefaults(t *testing.T) bridgeRun {
	run, err := parseBridgeArgs(nil)
	if err != nil && t != nil {
		t.Fatal(err)
	}
	return run
}

// specLeaves lists the JSON paths of typ's fields, descending into the structs of this API
// (not into Kubernetes' own types, which are passed on whole).
func specLeaves(prefix string, typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
			out = append(out, specLeaves(prefix+name+".", ft)...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// envFromSecret returns the Secret and key the container's variable name is read from.
func envFromSecret(pod corev1.PodSpec, name string) (secret, key string) {
	for _, e := range pod.Containers[0].Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
		}
	}
	return "", ""
}

// secretMountedAt returns the Secret whose volume is mounted at file's directory ("" for none).
func secretMountedAt(pod corev1.PodSpec, file string) string {
	if file == "" {
		return ""
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath != path.Dir(file) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
	}
	return ""
}

// fileName is file's base name ("" for none).
func fileName(file string) string {
	if file == "" {
		return ""
	}
	return path.Base(file)
}
