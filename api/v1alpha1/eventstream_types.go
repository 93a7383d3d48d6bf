package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventStreamSpec declares the RabbitMQ topology of one stream of events and the SSE bridge
// that serves it to browsers.
// +kubebuilder:validation:XValidation:rule="!has(self.bridge) || !has(self.bridge.replicas) || self.bridge.replicas <= 1 || (has(self.queue) && has(self.queue.type) && self.queue.type == 'stream')",message="bridge.replicas > 1 needs queue.type stream: a classic or quorum queue gives each message to one consumer, so replicas would each see only part of the events"
// +kubebuilder:validation:XValidation:rule="has(self.bridge) && has(self.bridge.auth) && ((has(self.bridge.auth.mode) && self.bridge.auth.mode == 'none') || has(self.bridge.auth.jwt))",message="bridge.auth.mode is jwt by default and needs a key source: set bridge.auth.jwt.secretRef: {name: <Secret with key 'secret'>} (HS256) or bridge.auth.jwt.jwksURL: https://… (RS256/ES256); or write bridge.auth.mode: none to let anyone read every tenant (development only)"
type EventStreamSpec struct {
	// RabbitMQ says how to reach the broker.
	RabbitMQ RabbitMQConnection `json:"rabbitmq"`

	// Exchange is the topic exchange publishers send to. It is shared with publishers.
	// +kubebuilder:default={}
	// +optional
	Exchange ExchangeSpec `json:"exchange,omitempty"`

	// Queue is the durable queue the bridge consumes.
	// +kubebuilder:default={}
	// +optional
	Queue QueueSpec `json:"queue,omitempty"`

	// BindingKeys bind the queue to the exchange; topic patterns with * and #.
	// +kubebuilder:default={"team.*.job.*.status"}
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="at least one binding key is required, e.g. team.*.job.*.status"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self.exists_one(o, o == k))",message="binding keys must be unique"
	// +optional
	BindingKeys []BindingKey `json:"bindingKeys,omitempty"`

	// Consumer tunes how the bridge consumes the queue.
	// +kubebuilder:default={}
	// +optional
	Consumer ConsumerSpec `json:"consumer,omitempty"`

	// Bridge configures the SSE bridge Deployment and Service.
	// +kubebuilder:default={}
	// +optional
	Bridge BridgeSpec `json:"bridge,omitempty"`

	// DeletionPolicy says what happens to the broker objects when the EventStream is deleted:
	// Delete removes bindings, policy, queue, dead-letter queue and exchange; Retain keeps them.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// DeletionPolicy is Delete or Retain.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	DeletionPolicyDelete DeletionPolicy = "Delete"
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// BindingKey is an AMQP topic pattern: dot-separated words, where * matches one word and #
// matches zero or more.
// +kubebuilder:validation:MaxLength=255
// +kubebuilder:validation:XValidation:rule="self.matches('^([A-Za-z0-9_:-]+|[*]|#)([.]([A-Za-z0-9_:-]+|[*]|#))*$')",message="a binding key must be a topic pattern: dot-separated words of letters, digits, '_', '-' or ':', or the wildcards * and #, e.g. team.*.job.*.status"
type BindingKey string

// BrokerObjectName names an exchange or a queue.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=200
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$')",message="a name may contain letters, digits, '.', '_', '-' and ':' and must not start with '.'"
// +kubebuilder:validation:XValidation:rule="!self.startsWith('amq.')",message="names starting with 'amq.' are reserved by RabbitMQ"
type BrokerObjectName string

// RabbitMQConnection references the credentials of the broker.
type RabbitMQConnection struct {
	// ConnectionSecret names a Secret in the EventStream's namespace with the key `uri`
	// (amqp[s]://user:pass@host:port/vhost) and optionally `managementURI`
	// (http[s]://host:15672). Without managementURI the management API is assumed on the
	// AMQP host, port 15672 (amqp) or 15671 (amqps).
	ConnectionSecret corev1.LocalObjectReference `json:"connectionSecret"`

	// TLS configures the CA that signs the broker's certificates, for amqps and https.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
}

// TLSSpec names a CA bundle.
type TLSSpec struct {
	// CASecret holds a PEM CA bundle that signs the broker's certificates.
	CASecret CASecretReference `json:"caSecret"`
}

// Each kind of Secret reference is a type of its own, so that each gets the default key of
// what it holds: a reference that names only the Secret reads that key.
const (
	// DefaultCAKey is the key of a CA Secret when caSecret.key is not set.
	DefaultCAKey = "ca.crt"
	// DefaultHS256SecretKey is the key of an HS256 Secret when secretRef.key is not set.
	DefaultHS256SecretKey = "secret"
	// DefaultPublicKeyKey is the key of a public-key Secret when publicKeySecretRef.key is
	// not set.
	DefaultPublicKeyKey = "key.pem"
)

// CASecretReference selects the key of a Secret, in the EventStream's namespace, that holds a
// PEM CA bundle.
type CASecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key of the Secret that holds the PEM CA bundle.
	// +kubebuilder:default=ca.crt
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// HS256SecretReference selects the key of a Secret, in the EventStream's namespace, that
// holds the HS256 shared secret tokens are signed with (the raw bytes, at least 32).
type HS256SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key of the Secret that holds the shared secret.
	// +kubebuilder:default=secret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// PublicKeySecretReference selects the key of a Secret, in the EventStream's namespace, that
// holds a PEM RS256 or ES256 public key.
type PublicKeySecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key of the Secret that holds the PEM public key.
	// +kubebuilder:default=key.pem
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// ExchangeSpec is the topic exchange (durable).
type ExchangeSpec struct {
	// +kubebuilder:default=events.topic
	// +optional
	Name BrokerObjectName `json:"name,omitempty"`
	// DeleteWhenUnused lets deletion with deletionPolicy Delete remove the exchange too, but
	// only when no other EventStream names it and no other queue is bound to it.
	// +optional
	DeleteWhenUnused bool `json:"deleteWhenUnused,omitempty"`
}

// QueueType is classic, quorum or stream.
// +kubebuilder:validation:Enum=classic;quorum;stream
type QueueType string

const (
	QueueTypeClassic QueueType = "classic"
	QueueTypeQuorum  QueueType = "quorum"
	QueueTypeStream  QueueType = "stream"
)

// QueueSpec is the durable queue the bridge consumes. TTL, length limits and dead-lettering
// are applied through a policy the operator owns, so they can change without re-creating the
// queue; only the type is a queue argument.
// +kubebuilder:validation:XValidation:rule="!has(self.maxLength) || !has(self.type) || self.type != 'stream'",message="maxLength is not supported by stream queues; use maxLengthBytes"
type QueueSpec struct {
	// Name of the queue; immutable.
	// +kubebuilder:default=events.sse
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="queue.name is immutable: create a new EventStream for another queue"
	// +optional
	Name BrokerObjectName `json:"name,omitempty"`

	// Type of the queue; immutable. stream allows several bridge replicas and exact resume.
	// +kubebuilder:default=classic
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="queue.type is immutable: RabbitMQ cannot change a queue's type; create a new EventStream"
	// +optional
	Type QueueType `json:"type,omitempty"`

	// MessageTTL is how long a message may wait in the queue (classic/quorum: message-ttl,
	// expired messages are dead-lettered) or how long a stream keeps it (max-age).
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="messageTTL must be greater than zero, e.g. 10m"
	// +optional
	MessageTTL *metav1.Duration `json:"messageTTL,omitempty"`

	// MaxLength caps the number of messages (classic/quorum); the oldest are dropped or
	// dead-lettered beyond it.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxLength *int64 `json:"maxLength,omitempty"`

	// MaxLengthBytes caps the queue's total message bytes (the retention size of a stream).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxLengthBytes *int64 `json:"maxLengthBytes,omitempty"`

	// DeadLetter creates <queue>.dlx and <queue>.dlq and routes rejected and expired
	// messages there.
	// +kubebuilder:default={}
	// +optional
	DeadLetter DeadLetterSpec `json:"deadLetter,omitempty"`
}

// DeadLetterSpec switches dead-lettering.
type DeadLetterSpec struct {
	// Enabled creates the dead-letter exchange and queue and routes rejected, malformed and
	// expired messages there; false drops them.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// ConsumerSpec tunes consumption.
type ConsumerSpec struct {
	// Prefetch is the AMQP QoS prefetch count of the bridge's consumer: the deliveries the
	// broker sends before the first is acked. The bridge may hold up to prefetch × 1 MiB (the
	// largest body it accepts) of bodies in flight, plus prefetch × 4 KiB of bodies already
	// handed off (to recognise redeliveries); events are usually ~200 bytes.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Prefetch int32 `json:"prefetch,omitempty"`
}

// OverflowPolicy says what a subscriber's full buffer does with a new event.
// +kubebuilder:validation:Enum=dropOldest;lastValue;disconnect
type OverflowPolicy string

const (
	OverflowDropOldest OverflowPolicy = "dropOldest"
	OverflowLastValue  OverflowPolicy = "lastValue"
	OverflowDisconnect OverflowPolicy = "disconnect"
)

// BridgeSpec configures the SSE bridge.
// +kubebuilder:validation:XValidation:rule="!has(self.auth) || !has(self.auth.mode) || self.auth.mode != 'none' || !has(self.service) || !has(self.service.type) || self.service.type == 'ClusterIP'",message="bridge.auth.mode none lets anyone who reaches the bridge read every tenant's events, so it is refused with a NodePort or LoadBalancer Service: use auth.mode jwt, or service.type ClusterIP"
// +kubebuilder:validation:XValidation:rule="!has(self.routingKeyTemplate) || !has(self.tenantPlaceholder) || self.routingKeyTemplate.contains('{' + self.tenantPlaceholder + '}')",message="tenantPlaceholder must name a placeholder of routingKeyTemplate"
type BridgeSpec struct {
	// Replicas of the bridge. More than one needs a stream queue.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image of the bridge; the operator's own image when empty.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Path the bridge serves events on.
	// +kubebuilder:default="/api/v1/events"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/[A-Za-z0-9/._~-]*$`
	// +optional
	Path string `json:"path,omitempty"`

	// RoutingKeyTemplate describes the routing keys of events; each {placeholder} is a whole
	// segment and becomes a query filter of the same name.
	// +kubebuilder:default="team.{team_id}.job.{job_id}.status"
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^([A-Za-z0-9_:-]+|[{][a-z][a-z0-9_]*[}])([.]([A-Za-z0-9_:-]+|[{][a-z][a-z0-9_]*[}]))*$')",message="routingKeyTemplate must be dot-separated segments, each a literal word or a whole-segment placeholder like {team_id}, e.g. team.{team_id}.job.{job_id}.status"
	// +optional
	RoutingKeyTemplate string `json:"routingKeyTemplate,omitempty"`

	// TenantPlaceholder is the template placeholder that holds the tenant.
	// +kubebuilder:default=team_id
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]*$`
	// +optional
	TenantPlaceholder string `json:"tenantPlaceholder,omitempty"`

	// Auth says who may read which tenant. Required: JWT settings, or mode none written out.
	// +optional
	Auth BridgeAuthSpec `json:"auth,omitempty"`

	// Heartbeat is the interval of SSE comment heartbeats.
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="heartbeat must be between 1s and 5m"
	// +optional
	Heartbeat *metav1.Duration `json:"heartbeat,omitempty"`

	// Buffer bounds each subscriber's queue of undelivered events.
	// +kubebuilder:default={}
	// +optional
	Buffer BufferSpec `json:"buffer,omitempty"`

	// Replay keeps recent events in memory for Last-Event-ID resume (classic/quorum).
	// +kubebuilder:default={}
	// +optional
	Replay ReplaySpec `json:"replay,omitempty"`

	// Snapshot keeps the newest event of each routing key so that a client asking with
	// snapshot=1 gets the current state of every key it may read first, and again after a
	// gap. Absent: snapshots are off. On a stream queue every replica rebuilds it from the
	// stream at start-up; on classic and quorum queues it lives in the bridge process
	// (docs/bridge.md, "Snapshot").
	// +optional
	Snapshot *SnapshotSpec `json:"snapshot,omitempty"`

	// Limits bound what clients can make a bridge hold.
	// +kubebuilder:default={}
	// +optional
	Limits LimitsSpec `json:"limits,omitempty"`

	// CORS lists the browser origins allowed to open streams cross-origin.
	// +optional
	CORS CORSSpec `json:"cors,omitempty"`

	// Resources of the bridge container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// NodeSelector of the bridge pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the bridge pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// PodAnnotations are added to the bridge pods.
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// Env is added to the bridge container's environment, e.g. the OpenTelemetry OTEL_*
	// variables that turn tracing on for this stream (see docs/tracing.md). Names starting with
	// RABBITMQ_ or BRIDGE_, and GOMEMLIMIT, are the operator's: it sets them from this spec
	// (connection Secret, JWT key, memory limit), so they are refused.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('RABBITMQ_') && !e.name.startsWith('BRIDGE_') && e.name != 'GOMEMLIMIT')",message="bridge.env must not set RABBITMQ_*, BRIDGE_* or GOMEMLIMIT: the operator sets those from the EventStream (rabbitmq.connectionSecret, bridge.auth, bridge.resources)"
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// Service exposes the bridge.
	// +kubebuilder:default={}
	// +optional
	Service ServiceSpec `json:"service,omitempty"`
}

// AuthMode is none or jwt.
// +kubebuilder:validation:Enum=none;jwt
type AuthMode string

const (
	AuthModeNone AuthMode = "none"
	AuthModeJWT  AuthMode = "jwt"
)

// BridgeAuthSpec configures authentication of SSE clients. Secure by default: without a
// mode the bridge requires a JWT, so auth.jwt must name where its keys come from (the rule is
// on EventStreamSpec, as the API server checks defaults of objects against their own rules).
type BridgeAuthSpec struct {
	// Mode jwt (the default) requires a valid token naming the tenants it may read; none lets
	// anyone who reaches the Service read every tenant (development only: the EventStream
	// shows an InsecureAuth condition, and a NodePort or LoadBalancer Service is refused).
	// +kubebuilder:default=jwt
	// +optional
	Mode AuthMode `json:"mode,omitempty"`
	// JWT says how tokens are checked; required with mode jwt.
	// +optional
	JWT *JWTAuthSpec `json:"jwt,omitempty"`
}

// JWTAuthSpec configures JWT validation. Exactly one key source must be set.
// +kubebuilder:validation:XValidation:rule="(has(self.secretRef) ? 1 : 0) + (has(self.jwksURL) ? 1 : 0) + (has(self.publicKeySecretRef) ? 1 : 0) == 1",message="set exactly one of secretRef (HS256), jwksURL or publicKeySecretRef"
type JWTAuthSpec struct {
	// SecretRef names the Secret holding the HS256 shared secret (key `secret` by default).
	// +optional
	SecretRef *HS256SecretReference `json:"secretRef,omitempty"`
	// JWKSURL serves the RS256/ES256 public keys.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	// +optional
	JWKSURL string `json:"jwksURL,omitempty"`
	// PublicKeySecretRef names the Secret holding a PEM RS256/ES256 public key (key
	// `key.pem` by default).
	// +optional
	PublicKeySecretRef *PublicKeySecretReference `json:"publicKeySecretRef,omitempty"`
	// Algorithms accepted; defaults follow the key source (HS256, or RS256 and ES256).
	// +kubebuilder:validation:MaxItems=3
	// +listType=set
	// +optional
	Algorithms []JWTAlgorithm `json:"algorithms,omitempty"`
	// Audience, when set, must be in the token's aud.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Audience string `json:"audience,omitempty"`
	// Issuer, when set, must equal the token's iss.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// TenantsClaim is the claim listing the caller's tenants.
	// +kubebuilder:default=teams
	// +kubebuilder:validation:MaxLength=128
	// +optional
	TenantsClaim string `json:"tenantsClaim,omitempty"`
	// RequiredScope must be among the token's scopes.
	// +kubebuilder:default="events:read"
	// +kubebuilder:validation:MaxLength=128
	// +optional
	RequiredScope string `json:"requiredScope,omitempty"`
	// Cookie, when set, is a cookie name the token may come in.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Cookie string `json:"cookie,omitempty"`
}

// JWTAlgorithm is a signing algorithm the bridge accepts.
// +kubebuilder:validation:Enum=HS256;RS256;ES256
type JWTAlgorithm string

// BufferSpec bounds a subscriber's buffer.
type BufferSpec struct {
	// Size is the most events a subscriber's buffer holds before the overflow policy applies
	// (the buffer is also bounded in bytes).
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +optional
	Size int32 `json:"size,omitempty"`
	// Overflow: dropOldest (sends a gap event), lastValue (newest per routing key), disconnect.
	// +kubebuilder:default=dropOldest
	// +optional
	Overflow OverflowPolicy `json:"overflow,omitempty"`
}

// ReplaySpec sizes the in-memory replay ring.
type ReplaySpec struct {
	// Size is how many recent events the bridge keeps for Last-Event-ID resume on classic and
	// quorum queues (also bounded in bytes); 0 turns resume off. Stream queues resume from
	// the stream itself.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Size int32 `json:"size,omitempty"`
}

// SnapshotSpec bounds the bridge's last-value store. When a bound is reached, the keys
// updated least recently leave it first.
type SnapshotSpec struct {
	// MaxKeys is how many routing keys (jobs) the store keeps at most.
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxKeys *int32 `json:"maxKeys,omitempty"`

	// MaxBytes bounds the memory the store holds per bridge, counted like the replay ring (the
	// events as allocated plus bookkeeping), e.g. 32Mi. Size spec.bridge.resources for it.
	// +kubebuilder:default="32Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('64Ki')) >= 0 && quantity(string(self)).compareTo(quantity('16Gi')) <= 0",message="snapshot.maxBytes must be between 64Ki and 16Gi"
	// +optional
	MaxBytes *resource.Quantity `json:"maxBytes,omitempty"`

	// MaxAge removes a key whose newest event is older than this (publish time); 0s: no age
	// bound. On a stream queue the bridge gets at most queue.messageTTL (the stream's
	// retention), so that a restarted replica, which rebuilds from what the stream retains,
	// serves what the others serve.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('8760h')",message="snapshot.maxAge must be between 0s (no age bound) and 8760h"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// LimitsSpec bounds connections. A browser refused by a limit retries by itself and gets in
// once the limit frees.
type LimitsSpec struct {
	// MaxConnections is the most open streams per bridge replica.
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxConnections int32 `json:"maxConnections,omitempty"`
	// MaxConnectionsPerTenant is the most open streams per tenant and bridge replica.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxConnectionsPerTenant int32 `json:"maxConnectionsPerTenant,omitempty"`
	// MaxConnectionsPerSubject is the most open streams per token subject (the JWT sub claim)
	// and bridge replica, so that one user or one leaked token cannot take a whole tenant's
	// share.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxConnectionsPerSubject int32 `json:"maxConnectionsPerSubject,omitempty"`
}

// CORSSpec lists allowed origins.
type CORSSpec struct {
	// AllowedOrigins are exact origins such as https://app.example.com.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^https?://[^/]+$`
	// +listType=set
	// +optional
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
}

// ServiceSpec configures the bridge Service.
type ServiceSpec struct {
	// Type of the Service. NodePort and LoadBalancer need auth mode jwt.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// Port of the Service.
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
	// Annotations are added to the Service (e.g. for a cloud load balancer).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// EventStreamStatus is what the operator observed.
type EventStreamStatus struct {
	// ObservedGeneration is the generation whose spec was fully applied.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, TopologyReady, BridgeReady, and InsecureAuth while auth mode is none.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Queue holds figures of the queue from the management API.
	// +optional
	Queue *QueueStatus `json:"queue,omitempty"`

	// Bridge holds figures summed over the bridge pods.
	// +optional
	Bridge *BridgeStatus `json:"bridge,omitempty"`
}

// QueueStatus is the queue as the broker reports it.
type QueueStatus struct {
	// Name of the queue.
	Name string `json:"name"`
	// MessagesReady waiting for a consumer.
	MessagesReady int64 `json:"messagesReady"`
	// MessagesUnacknowledged delivered but not yet acknowledged.
	MessagesUnacknowledged int64 `json:"messagesUnacknowledged"`
	// Consumers of the queue.
	Consumers int64 `json:"consumers"`
	// DeadLettered is the depth of the dead-letter queue.
	// +optional
	DeadLettered int64 `json:"deadLettered"`
}

// BridgeStatus sums the bridge pods' metrics.
type BridgeStatus struct {
	// Replicas is the desired number of bridge pods.
	Replicas int32 `json:"replicas"`
	// ReadyReplicas is the number of bridge pods ready to serve streams.
	ReadyReplicas int32 `json:"readyReplicas"`
	// ReplicasText is "ready/desired", for the printer column.
	// +optional
	ReplicasText string `json:"replicasText,omitempty"`
	// Clients is the number of open SSE streams.
	Clients int64 `json:"clients"`
	// Delivered is the number of events written to clients since the pods started.
	Delivered int64 `json:"delivered"`
	// Dropped is the number of events a client did not get (full buffer, disconnect); each
	// drop was signalled to its client with a gap event.
	Dropped int64 `json:"dropped"`
	// Reconnects is the number of times the bridges reconnected to the broker.
	Reconnects int64 `json:"reconnects"`
	// LagMessages is the number of messages the broker holds that no bridge has received yet.
	LagMessages int64 `json:"lagMessages"`
	// SnapshotKeys is the number of routing keys in the snapshot store of the largest bridge
	// replica (each replica keeps its own; 0 when spec.bridge.snapshot is not set).
	// +optional
	SnapshotKeys int64 `json:"snapshotKeys,omitempty"`
	// SnapshotBytes is the memory that store holds, in bytes.
	// +optional
	SnapshotBytes int64 `json:"snapshotBytes,omitempty"`
	// Endpoint is the in-cluster URL of the event stream.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// UnscrapedPods lists ready pods whose metrics could not be read this time.
	// +optional
	UnscrapedPods []string `json:"unscrapedPods,omitempty"`
}

// EventStream turns a RabbitMQ queue into filtered Server-Sent Events for browsers.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evs,categories=eventstream
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Queue",type=string,JSONPath=`.spec.queue.name`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.queue.type`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.bridge.replicasText`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.bridge.clients`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.bridge.lagMessages`
// +kubebuilder:printcolumn:name="Reconnects",type=integer,JSONPath=`.status.bridge.reconnects`
// +kubebuilder:printcolumn:name="DLQ",type=integer,JSONPath=`.status.queue.deadLettered`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventStream struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EventStreamSpec   `json:"spec,omitempty"`
	Status EventStreamStatus `json:"status,omitempty"`
}

// EventStreamList is a list of EventStreams.
// +kubebuilder:object:root=true
type EventStreamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventStream `json:"items"`
}

func init() {
	SchemeBuilder.Register(&EventStream{}, &EventStreamList{})
}
