package v1alpha1

// Condition types of an EventStream. Ready summarises TopologyReady and BridgeReady: it is True
// only when both are True. InsecureAuth is a warning that does not affect Ready. Reconciling
// and Stalled follow kstatus: at most one of them is present, and neither when Ready is True
// for the current generation.
const (
	// ConditionReady is True when the topology exists as declared and the bridge serves.
	ConditionReady = "Ready"
	// ConditionTopologyReady is True when the broker holds the declared exchange, queue,
	// bindings, dead-letter exchange and queue, and policy, as observed in this reconcile.
	ConditionTopologyReady = "TopologyReady"
	// ConditionBridgeReady is True when the bridge Deployment is available with the desired
	// number of ready replicas.
	ConditionBridgeReady = "BridgeReady"
	// ConditionInsecureAuth is True while bridge.auth.mode is none: anyone who reaches the
	// bridge reads every tenant's events. It is absent with auth mode jwt.
	ConditionInsecureAuth = "InsecureAuth"

	// ConditionReconciling is True while the operator is still bringing the stream to its
	// spec and expects to get there by itself (a rollout, a Secret or broker it waits for, a
	// transient error it retries); absent otherwise. kstatus (Flux, Argo CD, kubectl wait)
	// reads it as "in progress".
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot go on without a human (an invalid
	// Secret, a conflicting queue, a queue claimed by another stream, a request the broker
	// refuses); absent otherwise. It is retried only at the resync period, never hot.
	ConditionStalled = "Stalled"
)

// Condition reasons. Each failure reason names what a user should look at; docs/status.md
// says what to do for each.
const (
	// ReasonTopologyReconciled: every declared broker object exists with the declared settings.
	ReasonTopologyReconciled = "TopologyReconciled"
	// ReasonSecretNotFound: the connection Secret (or the TLS CA Secret) does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretInvalid: the Secret lacks the uri key or holds a URI that cannot be used.
	ReasonSecretInvalid = "SecretInvalid"
	// ReasonBrokerUnreachable: the management API could not be reached or refused the
	// credentials; the operator retries with jittered backoff.
	ReasonBrokerUnreachable = "BrokerUnreachable"
	// ReasonBrokerError: the broker answered a request with an error.
	ReasonBrokerError = "BrokerError"
	// ReasonQueueArgumentsConflict: the queue exists with arguments that differ from the
	// declared ones (the message names the keys); the operator will not delete it for you.
	ReasonQueueArgumentsConflict = "QueueArgumentsConflict"
	// ReasonQueueClaimed: another EventStream (the message names it as namespace/name) owns
	// the queue on this virtual host; this stream changes and deletes nothing of it and runs
	// no bridge until the queue is free.
	ReasonQueueClaimed = "QueueClaimed"
	// ReasonPolicyConflict: a policy that is not the operator's matches the queue with a
	// priority at least the operator's, so RabbitMQ applies it instead of the operator's
	// policy: the declared TTL, dead-lettering and length limits are not in effect. The
	// bindings and the bridge are still reconciled. Also the reason of the Warning Event for
	// either kind of policy conflict.
	ReasonPolicyConflict = "PolicyConflict"
	// ReasonForeignPolicyDisplaced: the topology is as declared (TopologyReady True), and a
	// policy that is not the operator's also matches the queue with a lower priority: it no
	// longer applies to the queue (RabbitMQ applies one policy per queue).
	ReasonForeignPolicyDisplaced = "ForeignPolicyDisplaced"
	// ReasonDeleting: the EventStream is being deleted.
	ReasonDeleting = "Deleting"

	// ReasonBridgeAvailable: the bridge Deployment has the desired number of ready replicas.
	ReasonBridgeAvailable = "BridgeAvailable"
	// ReasonBridgeProgressing: the bridge Deployment is rolling out or scaling.
	ReasonBridgeProgressing = "BridgeProgressing"
	// ReasonBridgeUnavailable: fewer ready bridge replicas than desired.
	ReasonBridgeUnavailable = "BridgeUnavailable"
	// ReasonWorkloadError: the bridge's Deployment, Service, ServiceAccount or
	// PodDisruptionBudget could not be created or updated; the message says which and why.
	ReasonWorkloadError = "WorkloadError"

	// ReasonAuthModeNone: bridge.auth.mode is none (InsecureAuth); use jwt outside development.
	ReasonAuthModeNone = "AuthModeNone"

	// ReasonReady: every other condition is True.
	ReasonReady = "Ready"
	// ReasonNotReady: some other condition is not True and has no reason of its own. When
	// it has one, Ready False carries the reason of the first condition that is not True
	// (TopologyReady before BridgeReady).
	ReasonNotReady = "NotReady"
)
