package controllers

import (
	"context"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// deleteAndWait deletes es and waits until its finalizer has run.
func deleteAndWait(es *esv1.EventStream) {
	ctx := context.Background()
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, es))).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(es), &esv1.EventStream{}))
	}, 30*time.Second, 200*time.Millisecond).Should(BeTrue())
}

// hasEvent reports whether namespace holds an Event of eventType and reason whose note
// contains every one of notes.
func hasEvent(namespace, eventType, reason string, notes ...string) func(Gomega) bool {
	return func(g Gomega) bool {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(namespace))).To(Succeed())
	events:
		for _, e := range list.Items {
			if e.Type != eventType || e.Reason != reason {
				continue
			}
			for _, n := range notes {
				if !strings.Contains(e.Note, n) {
					continue events
				}
			}
			return true
		}
		return false
	}
}

func brokerPolicyDefinition(name string) func(Gomega) rabbithole.PolicyDefinition {
	return func(g Gomega) rabbithole.PolicyDefinition {
		p, err := mgmt.GetPolicy("/", name)
		g.Expect(err).NotTo(HaveOccurred(), "policy %s", name)
		return p.Definition
	}
}

var _ = Describe("Queue ownership", func() {
	const defaultQueue = "events.sse"
	var nsA, nsB, exchange string
	ctx := context.Background()

	// onDefaultQueue leaves spec.queue.name to the API server's default and gives the spec
	// an exchange of its own.
	onDefaultQueue := func(es *esv1.EventStream) {
		es.Spec.Queue.Name = ""
		es.Spec.Exchange.Name = esv1.BrokerObjectName(exchange)
	}

	BeforeEach(func() {
		// The default queue is one per node: start without claims an aborted run left.
		policies, err := mgmt.ListPoliciesIn("/")
		Expect(err).NotTo(HaveOccurred())
		for _, p := range policies {
			if p.Pattern == `^events\.sse$` {
				_, _ = mgmt.DeletePolicy("/", p.Name)
			}
		}
		nsA, nsB = newNamespace(), newNamespace()
		exchange = uniqueName("ownership")
		createConnectionSecret(nsA, "rabbitmq", rmq)
		createConnectionSecret(nsB, "rabbitmq", rmq)
		DeferCleanup(func() {
			for _, ns := range []string{nsA, nsB} {
				_, _ = mgmt.DeletePolicy("/", "eventstream."+ns+".stream")
			}
			rabbitmqtest.DeleteTopology(rmq.URI, defaultQueue, exchange)
		})
	})

	It("lets the first of two streams on the default queue own it; the second reports QueueClaimed and its deletion removes nothing of the owner's", func() {
		first := newStream(nsA, "rabbitmq", "", onDefaultQueue)
		DeferCleanup(deleteAndWait, first)
		eventuallyReady(first)
		ownerPolicy := "eventstream." + nsA + ".stream"
		definition := brokerPolicyDefinition(ownerPolicy)(Default)

		second := newStream(nsB, "rabbitmq", "", onDefaultQueue)
		DeferCleanup(deleteAndWait, second)
		Eventually(func(g Gomega) {
			got := fetch(second)(g)
			c := conditionOf(got, esv1.ConditionTopologyReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(esv1.ReasonQueueClaimed))
			g.Expect(c.Message).To(ContainSubstring("EventStream " + nsA + "/stream"))
			ready := conditionOf(got, esv1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(esv1.ReasonQueueClaimed))
			g.Expect(ready.Message).To(ContainSubstring(nsA + "/stream"))
		}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
		Eventually(hasEvent(nsB, corev1.EventTypeWarning, esv1.ReasonQueueClaimed, nsA+"/stream"), 10*time.Second, 200*time.Millisecond).
			Should(BeTrue())

		// Over several resyncs of both streams the owner keeps its policy and stays Ready, and
		// the second stream writes no policy and runs no bridge (no second consumer).
		Consistently(func(g Gomega) {
			g.Expect(conditionOf(fetch(first)(g), esv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(brokerPolicyDefinition(ownerPolicy)(g)).To(Equal(definition))
			_, err := mgmt.GetPolicy("/", "eventstream."+nsB+".stream")
			g.Expect(isNotFound(err)).To(BeTrue(), "the second stream's policy: %v", err)
			err = k8sClient.Get(ctx, client.ObjectKey{Namespace: nsB, Name: bridgeName(second)}, &appsv1.Deployment{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the second stream's bridge: %v", err)
		}, 3*testResync, 250*time.Millisecond).Should(Succeed())

		deleteAndWait(second)
		for _, q := range []string{defaultQueue, defaultQueue + ".dlq"} {
			_, err := mgmt.GetQueue("/", q)
			Expect(err).NotTo(HaveOccurred(), "queue %s of the owner", q)
		}
		_, err := mgmt.GetExchange("/", defaultQueue+".dlx")
		Expect(err).NotTo(HaveOccurred(), "dead-letter exchange of the owner")
		Expect(brokerPolicyDefinition(ownerPolicy)(Default)).To(Equal(definition))
		Expect(queueBindingKeys(mgmt, defaultQueue)).To(ConsistOf(exchange + " team.*.job.*.status"))
		Expect(hasEvent(nsB, corev1.EventTypeNormal, "TopologyKept", nsA+"/stream")(Default)).To(BeTrue())
		eventuallyReady(first)
	})

	It("hands the queue to the waiting stream when the owner is deleted", func() {
		first := newStream(nsA, "rabbitmq", "", onDefaultQueue)
		DeferCleanup(deleteAndWait, first)
		eventuallyReady(first)
		second := newStream(nsB, "rabbitmq", "", onDefaultQueue)
		DeferCleanup(deleteAndWait, second)
		Eventually(func(g Gomega) {
			g.Expect(conditionOf(fetch(second)(g), esv1.ConditionTopologyReady).Reason).To(Equal(esv1.ReasonQueueClaimed))
		}, 30*time.Second, 200*time.Millisecond).Should(Succeed())

		deleteAndWait(first)
		released := time.Now()
		Eventually(func(g Gomega) {
			g.Expect(conditionOf(fetch(second)(g), esv1.ConditionTopologyReady).Status).To(Equal(metav1.ConditionTrue))
		}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
		GinkgoWriter.Printf("queue taken over %v after the owner was gone\n", time.Since(released))
		eventuallyReady(second)
		p, err := mgmt.GetPolicy("/", "eventstream."+nsB+".stream")
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Pattern).To(Equal(`^events\.sse$`))
		Expect(queueBindingKeys(mgmt, defaultQueue)).To(ConsistOf(exchange + " team.*.job.*.status"))
	})
})

var _ = Describe("Foreign policies on the queue", func() {
	var ns, queue, foreign string
	ctx := context.Background()

	BeforeEach(func() {
		ns = newNamespace()
		queue = uniqueName("q")
		foreign = "admin-" + queue
		createConnectionSecret(ns, "rabbitmq", rmq)
		DeferCleanup(func() { _, _ = mgmt.DeletePolicy("/", foreign) })
	})

	putForeign := func(priority int) {
		_, err := mgmt.PutPolicy("/", foreign, rabbithole.Policy{
			Pattern: "^" + queue, ApplyTo: "queues", Priority: priority,
			Definition: rabbithole.PolicyDefinition{"max-length": 7},
		})
		Expect(err).NotTo(HaveOccurred())
	}

	It("reports PolicyConflict while a policy of higher priority overrides the operator's, ForeignPolicyDisplaced while the operator's displaces it, and never changes it", func() {
		putForeign(20)
		es := newStream(ns, "rabbitmq", queue, nil)
		Eventually(func(g Gomega) {
			got := fetch(es)(g)
			c := conditionOf(got, esv1.ConditionTopologyReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(esv1.ReasonPolicyConflict))
			g.Expect(c.Message).To(ContainSubstring(foreign + " (priority 20"))
			g.Expect(conditionOf(got, esv1.ConditionReady).Reason).To(Equal(esv1.ReasonPolicyConflict))
		}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
		Eventually(hasEvent(ns, corev1.EventTypeWarning, esv1.ReasonPolicyConflict, foreign, "not in effect"), 10*time.Second, 200*time.Millisecond).
			Should(BeTrue())
		// Events still flow: the bindings and the bridge are reconciled.
		Expect(queueBindingKeys(mgmt, queue)).To(ConsistOf(queue + ".topic team.*.job.*.status"))
		Eventually(child(&appsv1.Deployment{}, es), 20*time.Second, 200*time.Millisecond).ShouldNot(BeNil())
		p, err := mgmt.GetPolicy("/", foreign)
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Priority).To(Equal(20))
		Expect(p.Definition).To(Equal(rabbithole.PolicyDefinition{"max-length": float64(7)}))

		putForeign(0)
		Eventually(func(g Gomega) {
			c := conditionOf(fetch(es)(g), esv1.ConditionTopologyReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(esv1.ReasonForeignPolicyDisplaced))
			g.Expect(c.Message).To(ContainSubstring(foreign + " (priority 0"))
		}, 3*testResync+10*time.Second, 200*time.Millisecond).Should(Succeed())
		Eventually(hasEvent(ns, corev1.EventTypeWarning, esv1.ReasonPolicyConflict, foreign, "no longer applies"), 10*time.Second, 200*time.Millisecond).
			Should(BeTrue())
		eventuallyReady(es)

		_, err = mgmt.DeletePolicy("/", foreign)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(conditionOf(fetch(es)(g), esv1.ConditionTopologyReady).Reason).To(Equal(esv1.ReasonTopologyReconciled))
		}, 3*testResync+10*time.Second, 200*time.Millisecond).Should(Succeed())
		Expect(k8sClient.Delete(ctx, es)).To(Succeed())
	})
})
