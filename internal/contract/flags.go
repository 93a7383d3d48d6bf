package contract

// Flag names of the bridge that the operator sets (docs/bridge.md lists all of the bridge's
// flags).
const (
	FlagExchange                 = "exchange"
	FlagQueue                    = "queue"
	FlagQueueType                = "queue-type"
	FlagPrefetch                 = "prefetch"
	FlagDeadLetterExchange       = "dead-letter-exchange"
	FlagListen                   = "listen"
	FlagMetricsListen            = "metrics-listen"
	FlagPath                     = "path"
	FlagRoutingKeyTemplate       = "routing-key-template"
	FlagTenantParam              = "tenant-param"
	FlagHeartbeat                = "heartbeat"
	FlagBufferSize               = "buffer-size"
	FlagOverflow                 = "overflow"
	FlagReplaySize               = "replay-size"
	FlagMaxConnections           = "max-connections"
	FlagMaxConnectionsPerTenant  = "max-connections-per-tenant"
	FlagMaxConnectionsPerSubject = "max-connections-per-subject"
	FlagDrainTimeout             = "drain-timeout"
	FlagBrokerLostGrace          = "broker-lost-grace"
	FlagLogFormat                = "log-format"
	FlagAMQPCAFile               = "amqp-ca-file"
	FlagSnapshotMaxKeys          = "snapshot-max-keys"
	FlagSnapshotMaxBytes         = "snapshot-max-bytes"
	FlagSnapshotMaxAge           = "snapshot-max-age"

	FlagCORSAllowedOrigins = "cors-allowed-origins"

	FlagAuthMode           = "auth-mode"
	FlagAuthHS256SecretEnv = "auth-hs256-secret-env"
	FlagAuthJWKSURL        = "auth-jwks-url"
	FlagAuthPublicKeyFile  = "auth-public-key-file"
	FlagAuthAlgorithms     = "auth-algorithms"
	FlagAuthAudience       = "auth-audience"
	FlagAuthIssuer         = "auth-issuer"
	FlagAuthTenantsClaim   = "auth-tenants-claim"
	FlagAuthRequiredScope  = "auth-required-scope"
	FlagAuthCookie         = "auth-cookie"
)

// Arg is one flag as the operator passes it: --name=value.
func Arg(name, value string) string { return "--" + name + "=" + value }

// Environment keys. The operator sets EnvRabbitMQURL on the bridge pods; the bridge and
// eventctl read the others as defaults of their flags (the names applications of this kind
// already use).
const (
	// EnvRabbitMQURL holds the AMQP URI with credentials; it has no flag.
	EnvRabbitMQURL      = "RABBITMQ_URL"
	EnvEventsExchange   = "RABBITMQ_EVENTS_EXCHANGE"
	EnvEventsQueue      = "RABBITMQ_EVENTS_QUEUE"
	EnvEventsBindingKey = "RABBITMQ_EVENTS_BINDING_KEY"
	EnvPrefetchCount    = "RABBITMQ_PREFETCH_COUNT"
)
