package contract

import (
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
)

// Defaults of an EventStream. The CRD applies them (its +kubebuilder:default markers cannot
// name Go constants; api/v1alpha1/crd_defaults_test.go checks they say the same), the
// operator falls back to them for fields stored before a default existed, and the bridge's
// flags default to those it reads.
const (
	DefaultExchange           = events.DefaultExchange
	DefaultQueue              = "events.sse"
	DefaultQueueType          = "classic"
	DefaultBindingKey         = "team.*.job.*.status"
	DefaultMessageTTL         = 10 * time.Minute
	DefaultDeadLetter         = true
	DefaultPrefetch           = 1000 // DESIGN.md said 100; docs/performance.md says why 1000
	DefaultDeletionPolicy     = "Delete"
	DefaultReplicas           = 1
	DefaultPath               = "/api/v1/events"
	DefaultRoutingKeyTemplate = events.DefaultRoutingKeyTemplate
	DefaultTenantParam        = "team_id"
	DefaultHeartbeat          = 15 * time.Second
	DefaultBufferSize         = 256
	DefaultOverflow           = "dropOldest"
	DefaultReplaySize         = 1000

	DefaultMaxConnections           = 10000
	DefaultMaxConnectionsPerTenant  = 1000
	DefaultMaxConnectionsPerSubject = 100

	DefaultAuthMode      = "jwt"
	DefaultTenantsClaim  = "teams"
	DefaultRequiredScope = "events:read"

	// Defaults of spec.bridge.snapshot once it is present (absent: snapshots off, which is
	// also the bridge's own default, --snapshot-max-keys=0).
	DefaultSnapshotMaxKeys  = 10_000
	DefaultSnapshotMaxBytes = 32 << 20
	DefaultSnapshotMaxAge   = 24 * time.Hour

	DefaultServiceType = "ClusterIP"
	DefaultServicePort = 80
)
