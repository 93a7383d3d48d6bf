package controllers

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker/brokertest"
)

// Reconciler unit tests (the in-memory broker and the fake API server of
// reconcile_unit_env_test.go): `go test ./controllers/ -run Unit` needs neither RabbitMQ nor
// KUBEBUILDER_ASSETS.

func TestUnitReconcileDeclaresTopology(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	es := env.createStream("orders", "orders", nil)

	got, res, err := env.reconcile(es)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(unitStatusInterval))
	g.Expect(controllerutil.ContainsFinalizer(got, Finalizer)).To(BeTrue())
	g.Expect(conditionOf(got, esv1.ConditionTopologyReady)).To(And(
		HaveField("Status", metav1.ConditionTrue), HaveField("Reason", esv1.ReasonTopologyReconciled)))
	// envtest-less: no Deployment controller, so the bridge is still progressing.
	g.Expect(conditionOf(got, esv1.ConditionReconciling).Reason).To(Equal(esv1.ReasonBridgeProgressing))
	g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionStalled)))

	state := env.broker.State()
	g.Expect(state.Exchanges).To(Equal(map[string]broker.Exchange{
		"orders.topic": {Name: "orders.topic", Type: "topic", Durable: true},
		"orders.dlx":   {Name: "orders.dlx", Type: "fanout", Durable: true},
	}))
	g.Expect(state.Queues).To(HaveLen(2))
	g.Expect(state.Queues["orders"].Arguments).To(Equal(map[string]any{"x-queue-type": "classic"}))
	g.Expect(state.Queues).To(HaveKey("orders.dlq"))
	g.Expect(bindingsOf(state)).To(Equal([]string{"orders.topic→orders jobs.#", "orders.dlx→orders.dlq "}))
	g.Expect(state.Policies).To(HaveKeyWithValue("eventstream.team-a.orders", And(
		HaveField("Pattern", `^orders$`),
		HaveField("Definition", Equal(map[string]any{"message-ttl": float64(600000), "dead-letter-exchange": "orders.dlx"})))))
}

// TestUnitReconcileBrokerFailures: an unreachable broker or a server error is transient (the
// error is returned for backoff, Reconciling); a 4xx answer or a conflicting existing object
// is stalled (no error, Stalled, looked at again only at the resync period).
func TestUnitReconcileBrokerFailures(t *testing.T) {
	refused := &broker.BrokerError{Operation: "declare", StatusCode: http.StatusBadRequest, Message: "PRECONDITION_FAILED"}
	serverError := &broker.BrokerError{Operation: "declare", StatusCode: http.StatusInternalServerError, Message: "internal error"}
	cases := []struct {
		name string
		// fault is injected on operation op; setup prepares the broker otherwise.
		op      brokertest.Operation
		fault   error
		setup   func(*brokertest.Broker)
		stalled bool
		reason  string
	}{
		{name: "unreachable on every call", op: brokertest.AnyOperation, fault: brokertest.Unreachable, reason: esv1.ReasonBrokerUnreachable},
		{name: "unreachable listing the queues", op: brokertest.ListQueues, fault: brokertest.Unreachable, reason: esv1.ReasonBrokerUnreachable},
		{name: "unreachable declaring", op: brokertest.Declare, fault: brokertest.Unreachable, reason: esv1.ReasonBrokerUnreachable},
		{name: "server error declaring", op: brokertest.Declare, fault: serverError, reason: esv1.ReasonBrokerError},
		{name: "4xx declaring", op: brokertest.Declare, fault: refused, stalled: true, reason: esv1.ReasonBrokerError},
		{
			name: "queue exists with a TTL argument",
			setup: func(b *brokertest.Broker) {
				b.AddQueue(broker.Queue{Name: "orders", Type: "classic", Durable: true, Arguments: map[string]any{"x-message-ttl": 1000}})
			},
			stalled: true, reason: esv1.ReasonQueueArgumentsConflict,
		},
		{
			name: "queue exists with another type",
			setup: func(b *brokertest.Broker) {
				b.AddQueue(broker.Queue{Name: "orders", Type: "quorum", Durable: true, Arguments: map[string]any{"x-queue-type": "quorum"}})
			},
			stalled: true, reason: esv1.ReasonQueueArgumentsConflict,
		},
		{
			name: "exchange exists with another type",
			setup: func(b *brokertest.Broker) {
				if err := b.DeclareExchange(context.Background(), "orders.topic", "fanout"); err != nil {
					t.Fatal(err)
				}
			},
			stalled: true, reason: esv1.ReasonBrokerError,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			env := newUnitEnv(t)
			if tc.setup != nil {
				tc.setup(env.broker)
			}
			if tc.fault != nil {
				env.broker.Fail(tc.op, tc.fault)
			}
			es := env.createStream("orders", "orders", nil)

			got, res, err := env.reconcile(es)

			g.Expect(conditionOf(got, esv1.ConditionTopologyReady)).To(And(
				HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tc.reason)))
			g.Expect(conditionOf(got, esv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
			g.Expect(env.events.has("Warning", tc.reason)).To(BeTrue(), "events:\n%s", env.events)
			if tc.stalled {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res.RequeueAfter).To(Equal(unitResync))
				g.Expect(conditionOf(got, esv1.ConditionStalled)).To(And(
					HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tc.reason)))
				g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionReconciling)))
			} else {
				g.Expect(err).To(HaveOccurred())
				g.Expect(conditionOf(got, esv1.ConditionReconciling)).To(And(
					HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tc.reason)))
				g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionStalled)))
			}
			if tc.reason == esv1.ReasonQueueArgumentsConflict {
				g.Expect(bindingsOf(env.broker.State())).NotTo(ContainElement(HavePrefix("orders.topic→orders ")),
					"a conflicting queue must stop the reconcile before anything is bound to it")
			}
			if tc.fault == nil {
				return
			}
			// The next reconcile after the fault is gone repairs everything and clears Stalled.
			env.broker.Heal()
			got = env.mustReconcile(es)
			g.Expect(conditionOf(got, esv1.ConditionTopologyReady).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionStalled)))
		})
	}
}

// TestUnitReconcileWaitsForSecret: a missing connection Secret is waiting, neither an error
// nor stalled; the stream proceeds once the Secret exists.
func TestUnitReconcileWaitsForSecret(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	es := env.createStream("orders", "orders", func(es *esv1.EventStream) {
		es.Spec.RabbitMQ.ConnectionSecret.Name = "later"
	})

	got, res, err := env.reconcile(es)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(unitResync))
	g.Expect(conditionOf(got, esv1.ConditionReconciling).Reason).To(Equal(esv1.ReasonSecretNotFound))
	g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionStalled)))
	g.Expect(env.broker.State().Queues).To(BeEmpty())

	later := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: unitNamespace, Name: "later"},
		Data: map[string][]byte{secretKeyURI: []byte("amqp://rabbitmq")}}
	g.Expect(env.client.Create(env.ctx, later)).To(Succeed())
	got = env.mustReconcile(es)
	g.Expect(conditionOf(got, esv1.ConditionTopologyReady).Status).To(Equal(metav1.ConditionTrue))
}

// TestUnitReconcileRepairsDrift: what is deleted behind the operator's back comes back at the
// next full check, at the latest after the resync period. Between resyncs only the queue
// listing is read, so a missing queue is noticed at the next status refresh and anything else
// at the resync.
func TestUnitReconcileRepairsDrift(t *testing.T) {
	cases := []struct {
		name                  string
		drift                 func(env *unitEnv) error
		noticedAtStatusUpdate bool
	}{
		{name: "queue deleted", noticedAtStatusUpdate: true,
			drift: func(env *unitEnv) error { return env.broker.DeleteQueue(env.ctx, "orders") }},
		{name: "dead-letter queue deleted", noticedAtStatusUpdate: true,
			drift: func(env *unitEnv) error { return env.broker.DeleteQueue(env.ctx, "orders.dlq") }},
		{name: "binding removed",
			drift: func(env *unitEnv) error {
				return env.broker.Unbind(env.ctx, broker.Binding{Source: "orders.topic", Queue: "orders", PropertiesKey: "jobs.#"})
			}},
		{name: "policy deleted",
			drift: func(env *unitEnv) error { return env.broker.DeletePolicy(env.ctx, "eventstream.team-a.orders") }},
		{name: "dead-letter exchange deleted",
			drift: func(env *unitEnv) error { return env.broker.DeleteExchange(env.ctx, "orders.dlx") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			env := newUnitEnv(t)
			es := env.createStream("orders", "orders", nil)
			env.mustReconcile(es)
			declared := env.broker.State()
			g.Expect(tc.drift(env)).To(Succeed())
			g.Expect(env.broker.State()).NotTo(Equal(declared))

			env.clock.Step(unitStatusInterval)
			env.mustReconcile(es)
			if tc.noticedAtStatusUpdate {
				g.Expect(env.broker.State()).To(Equal(declared), "repaired at the next status refresh")
			} else {
				g.Expect(env.broker.State()).NotTo(Equal(declared), "between resyncs only queues are checked")
			}

			env.clock.Step(unitResync)
			got := env.mustReconcile(es)
			g.Expect(env.broker.State()).To(Equal(declared), "repaired at the resync")
			g.Expect(conditionOf(got, esv1.ConditionTopologyReady).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(env.events.has("Normal", "TopologyChanged")).To(BeTrue(), "events:\n%s", env.events)
		})
	}
}

// TestUnitReconcileRefreshesQueueFigures: between resyncs a reconcile reads the figures from
// one queue listing and declares nothing.
func TestUnitReconcileRefreshesQueueFigures(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)
	g.Expect(env.broker.SetFigures("orders", 7, 2, 1)).To(BeTrue())
	g.Expect(env.broker.SetFigures("orders.dlq", 3, 0, 0)).To(BeTrue())
	getsBefore, listsBefore := env.broker.Calls(brokertest.GetQueue), env.broker.Calls(brokertest.ListPolicies)
	queueListsBefore := env.broker.Calls(brokertest.ListQueues)

	env.clock.Step(unitStatusInterval)
	got := env.mustReconcile(es)

	g.Expect(got.Status.Queue).To(Equal(&esv1.QueueStatus{Name: "orders", MessagesReady: 7,
		MessagesUnacknowledged: 2, Consumers: 1, DeadLettered: 3}))
	g.Expect(env.broker.Calls(brokertest.ListQueues)).To(Equal(queueListsBefore + 1))
	g.Expect(env.broker.Calls(brokertest.GetQueue)).To(Equal(getsBefore), "no per-queue reads between resyncs")
	g.Expect(env.broker.Calls(brokertest.ListPolicies)).To(Equal(listsBefore), "no topology check between resyncs")
}

// TestUnitReconcileDeletion: deletionPolicy Delete removes the stream's broker objects,
// Retain keeps them; an unreachable broker holds the finalizer until DeletionTimeout, then
// the finalizer goes with a Warning naming what was left.
func TestUnitReconcileDeletion(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*esv1.EventStream)
		fault  error
		// elapsed is how long after the deletion the reconcile runs.
		elapsed time.Duration
		// left is what the broker holds afterwards: the exchanges and queues by name, with
		// bindings and policies when kept is set.
		left      []string
		keptAll   bool
		gone      bool
		eventType string
		reason    string
	}{
		{name: "Delete", left: []string{"orders.topic"}, gone: true, eventType: "Normal", reason: "TopologyDeleted"},
		{name: "Delete with exchange.deleteWhenUnused", left: []string{},
			mutate: func(es *esv1.EventStream) { es.Spec.Exchange.DeleteWhenUnused = true },
			gone:   true, eventType: "Normal", reason: "TopologyDeleted"},
		{name: "Retain", mutate: func(es *esv1.EventStream) { es.Spec.DeletionPolicy = esv1.DeletionPolicyRetain },
			keptAll: true, gone: true, eventType: "Normal", reason: "TopologyRetained"},
		{name: "Delete, broker unreachable within the timeout", fault: brokertest.Unreachable,
			keptAll: true, gone: false, eventType: "Warning", reason: "TopologyCleanupFailed"},
		{name: "Delete, 4xx answer", fault: &broker.BrokerError{Operation: "delete_queue", StatusCode: http.StatusForbidden},
			keptAll: true, gone: true, eventType: "Warning", reason: "TopologyCleanupAbandoned"},
		{name: "Delete, broker unreachable past the timeout", fault: brokertest.Unreachable, elapsed: unitDeletionTimeout + 2*time.Second,
			keptAll: true, gone: true, eventType: "Warning", reason: "TopologyCleanupAbandoned"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			env := newUnitEnv(t)
			es := env.createStream("orders", "orders", tc.mutate)
			env.mustReconcile(es)
			declared := env.broker.State()
			if tc.fault != nil {
				env.broker.Fail(brokertest.AnyOperation, tc.fault)
			}

			env.delete(es)
			env.clock.Step(tc.elapsed)
			got, res, err := env.reconcile(es)

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(env.events.has(tc.eventType, tc.reason)).To(BeTrue(), "events:\n%s", env.events)
			if tc.gone {
				g.Expect(got).To(BeNil(), "the finalizer is removed and the stream gone")
			} else {
				g.Expect(got).NotTo(BeNil())
				g.Expect(controllerutil.ContainsFinalizer(got, Finalizer)).To(BeTrue())
				g.Expect(res.RequeueAfter).To(BeNumerically(">", 0))
				g.Expect(res.RequeueAfter).To(BeNumerically("<=", 5*time.Second))
			}
			state := env.broker.State()
			if tc.keptAll {
				g.Expect(state).To(Equal(declared))
				return
			}
			g.Expect(namesOf(state)).To(ConsistOf(tc.left))
			g.Expect(state.Bindings).To(BeEmpty())
			g.Expect(state.Policies).To(BeEmpty())
		})
	}
}

// TestUnitReconcileQueueClaimed: a second stream on a queue another stream owns is stalled
// with QueueClaimed and changes nothing on the broker, neither while it waits nor when it is
// deleted.
func TestUnitReconcileQueueClaimed(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	owner := env.createStream("owner", "shared", nil)
	env.mustReconcile(owner)
	ownersObjects := env.broker.State()

	second := env.createStream("second", "shared", func(es *esv1.EventStream) {
		es.Spec.BindingKeys = []esv1.BindingKey{"other.#"}
		es.Spec.Queue.MessageTTL = &metav1.Duration{Duration: time.Minute}
	})
	got, res, err := env.reconcile(second)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(unitResync))
	g.Expect(conditionOf(got, esv1.ConditionTopologyReady).Reason).To(Equal(esv1.ReasonQueueClaimed))
	g.Expect(conditionOf(got, esv1.ConditionStalled)).To(And(
		HaveField("Status", metav1.ConditionTrue), HaveField("Reason", esv1.ReasonQueueClaimed),
		HaveField("Message", ContainSubstring("EventStream team-a/owner"))))
	g.Expect(env.broker.State()).To(Equal(ownersObjects), "the owner's objects are untouched")

	env.delete(second)
	got, _, err = env.reconcile(second)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeNil())
	g.Expect(env.events.has("Normal", "TopologyKept")).To(BeTrue(), "events:\n%s", env.events)
	g.Expect(env.broker.State()).To(Equal(ownersObjects), "deleting the waiting stream leaves the owner's objects")

	env.clock.Step(unitResync)
	got = env.mustReconcile(owner)
	g.Expect(conditionOf(got, esv1.ConditionTopologyReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(env.broker.State()).To(Equal(ownersObjects))
}

// bindingsOf renders a state's bindings as "source→queue key", sorted as State sorts them.
func bindingsOf(s brokertest.State) []string {
	var out []string
	for _, b := range s.Bindings {
		out = append(out, b.Source+"→"+b.Queue+" "+b.RoutingKey)
	}
	return out
}

// namesOf lists a state's exchanges and queues by name, sorted.
func namesOf(s brokertest.State) []string {
	names := []string{}
	for name := range s.Exchanges {
		names = append(names, name)
	}
	for name := range s.Queues {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
