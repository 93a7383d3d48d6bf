package controllers

import (
	"context"
	"errors"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	amqp "github.com/rabbitmq/amqp091-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

func newStream(namespace, secret, queue string, mutate func(*esv1.EventStream)) *esv1.EventStream {
	es := &esv1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "stream"},
		Spec: esv1.EventStreamSpec{
			RabbitMQ: esv1.RabbitMQConnection{ConnectionSecret: corev1.LocalObjectReference{Name: secret}},
			Exchange: esv1.ExchangeSpec{Name: esv1.BrokerObjectName(queue + ".topic")},
			Queue:    esv1.QueueSpec{Name: esv1.BrokerObjectName(queue)},
			// Written explicitly, as the API server requires: these specs are about the broker.
			Bridge: esv1.BridgeSpec{Auth: esv1.BridgeAuthSpec{Mode: esv1.AuthModeNone}},
		},
	}
	if mutate != nil {
		mutate(es)
	}
	Expect(k8sClient.Create(context.Background(), es)).To(Succeed())
	return es
}

func fetch(es *esv1.EventStream) func(Gomega) *esv1.EventStream {
	return func(g Gomega) *esv1.EventStream {
		got := &esv1.EventStream{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(es), got)).To(Succeed())
		return got
	}
}

func conditionOf(es *esv1.EventStream, t string) metav1.Condition {
	if c := meta.FindStatusCondition(es.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// eventuallyReady waits until the stream is Ready for its current generation, playing the
// Deployment controller (envtest runs none) by marking the bridge Deployment available.
func eventuallyReady(es *esv1.EventStream) *esv1.EventStream {
	var got *esv1.EventStream
	Eventually(func(g Gomega) {
		got = fetch(es)(g)
		dep := child(&appsv1.Deployment{}, got)(g)
		if n := ptrValue(dep.Spec.Replicas); dep.Status.AvailableReplicas != n || dep.Status.ObservedGeneration != dep.Generation {
			dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n,
				UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			g.Expect(k8sClient.Status().Update(context.Background(), dep)).To(Succeed())
		}
		g.Expect(conditionOf(got, esv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue), "conditions: %+v", got.Status.Conditions)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		// kstatus: Current, neither in progress nor stalled.
		g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionReconciling)))
		g.Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionStalled)))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	return got
}

func publish(uri, exchange, routingKey string, n int) {
	conn, err := amqp.Dial(uri)
	Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	ch, err := conn.Channel()
	Expect(err).NotTo(HaveOccurred())
	Expect(ch.Confirm(false)).To(Succeed())
	for range n {
		confirm, err := ch.PublishWithDeferredConfirm(exchange, routingKey, true, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(`{"status":"running"}`),
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(confirm.Wait()).To(BeTrue())
	}
}

func queueBindingKeys(m *rabbithole.Client, queue string) []string {
	bs, err := m.ListQueueBindings("/", queue)
	Expect(err).NotTo(HaveOccurred())
	var keys []string
	for _, b := range bs {
		if b.Source != "" {
			keys = append(keys, b.Source+" "+b.RoutingKey)
		}
	}
	return keys
}

func isNotFound(err error) bool {
	var answer rabbithole.ErrorResponse
	return errors.As(err, &answer) && answer.StatusCode == 404
}

func eventReasons(namespace string) []string {
	var list eventsv1.EventList
	Expect(k8sClient.List(context.Background(), &list, client.InNamespace(namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

var _ = Describe("Topology", func() {
	var ns, queue string
	ctx := context.Background()

	BeforeEach(func() {
		ns = newNamespace()
		queue = uniqueName("q")
		createConnectionSecret(ns, "rabbitmq", rmq)
	})

	It("creates exchange, queue, dead-letter objects, policy and bindings and reports them", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		got := eventuallyReady(es)
		Expect(conditionOf(got, esv1.ConditionTopologyReady).Reason).To(Equal(esv1.ReasonTopologyReconciled))
		Expect(got.Status.Queue).NotTo(BeNil())
		Expect(got.Status.Queue.Name).To(Equal(queue))
		Expect(got.Finalizers).To(ContainElement(Finalizer))

		ex, err := mgmt.GetExchange("/", queue+".topic")
		Expect(err).NotTo(HaveOccurred())
		Expect(ex.Type).To(Equal("topic"))
		Expect(ex.Durable).To(BeTrue())

		q, err := mgmt.GetQueue("/", queue)
		Expect(err).NotTo(HaveOccurred())
		Expect(q.Durable).To(BeTrue())
		Expect(q.Arguments).To(Equal(map[string]any{"x-queue-type": "classic"}))

		dlx, err := mgmt.GetExchange("/", queue+".dlx")
		Expect(err).NotTo(HaveOccurred())
		Expect(dlx.Type).To(Equal("fanout"))
		Expect(queueBindingKeys(mgmt, queue+".dlq")).To(ConsistOf(queue + ".dlx "))

		p, err := mgmt.GetPolicy("/", "eventstream."+ns+".stream")
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Pattern).To(Equal("^" + queue + "$"))
		Expect(p.ApplyTo).To(Equal("queues"))
		Expect(p.Definition).To(Equal(rabbithole.PolicyDefinition{
			"message-ttl": float64(600000), "dead-letter-exchange": queue + ".dlx",
		}))
		Expect(queueBindingKeys(mgmt, queue)).To(ConsistOf(queue + ".topic team.*.job.*.status"))

		Eventually(func() []string { return eventReasons(ns) }).Should(ContainElement("TopologyChanged"))
	})

	It("applies a TTL change through the policy and keeps the queued messages", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		eventuallyReady(es)
		publish(rmq.URI, queue+".topic", "team.1.job.2.status", 3)
		Eventually(func(g Gomega) {
			q, err := mgmt.GetQueue("/", queue)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(q.Messages).To(Equal(3))
		}, 20*time.Second, 250*time.Millisecond).Should(Succeed())

		updateStream(es, func(got *esv1.EventStream) {
			got.Spec.Queue.MessageTTL = &metav1.Duration{Duration: 20 * time.Minute}
			got.Spec.Queue.MaxLength = ptr(int64(5000))
		})

		Eventually(func(g Gomega) {
			p, err := mgmt.GetPolicy("/", "eventstream."+ns+".stream")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Definition["message-ttl"]).To(Equal(float64(1200000)))
			g.Expect(p.Definition["max-length"]).To(Equal(float64(5000)))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		eventuallyReady(es)
		// The management API refreshes a queue's figures and effective policy every few
		// seconds.
		Eventually(func(g Gomega) {
			q, err := mgmt.GetQueue("/", queue)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(q.Policy).To(Equal("eventstream." + ns + ".stream"))
			g.Expect(q.Messages).To(Equal(3), "the queue and its messages stay")
		}, 20*time.Second, 250*time.Millisecond).Should(Succeed())
	})

	It("follows binding key changes and removes bindings no longer declared", func() {
		es := newStream(ns, "rabbitmq", queue, func(es *esv1.EventStream) {
			es.Spec.BindingKeys = []esv1.BindingKey{"team.*.job.*.status", "team.*.alerts"}
		})
		eventuallyReady(es)
		Expect(queueBindingKeys(mgmt, queue)).To(ConsistOf(queue+".topic team.*.job.*.status", queue+".topic team.*.alerts"))

		updateStream(es, func(got *esv1.EventStream) {
			got.Spec.BindingKeys = []esv1.BindingKey{"team.#"}
		})
		Eventually(func() []string { return queueBindingKeys(mgmt, queue) }, 20*time.Second, 200*time.Millisecond).
			Should(ConsistOf(queue + ".topic team.#"))
	})

	It("repairs drift: a deleted queue, binding and policy come back within the resync period", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		eventuallyReady(es)

		_, err := mgmt.DeleteQueue("/", queue)
		Expect(err).NotTo(HaveOccurred())
		_, err = mgmt.DeletePolicy("/", "eventstream."+ns+".stream")
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			q, err := mgmt.GetQueue("/", queue)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(q.Policy).To(Equal("eventstream." + ns + ".stream"))
			g.Expect(queueBindingKeys(mgmt, queue)).To(ConsistOf(queue + ".topic team.*.job.*.status"))
		}, 3*testResync+10*time.Second, 200*time.Millisecond).Should(Succeed())

		bs, err := mgmt.ListQueueBindingsBetween("/", queue+".topic", queue)
		Expect(err).NotTo(HaveOccurred())
		Expect(bs).To(HaveLen(1))
		_, err = mgmt.DeleteBinding("/", bs[0])
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return queueBindingKeys(mgmt, queue) }, 3*testResync+10*time.Second, 200*time.Millisecond).
			Should(ConsistOf(queue + ".topic team.*.job.*.status"))
		eventuallyReady(es)
	})

	It("deletes the topology with deletionPolicy Delete and keeps the shared exchange", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		eventuallyReady(es)
		Expect(k8sClient.Delete(ctx, es)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(es), &esv1.EventStream{}))
		}, 20*time.Second, 200*time.Millisecond).Should(BeTrue())

		for _, q := range []string{queue, queue + ".dlq"} {
			_, err := mgmt.GetQueue("/", q)
			Expect(isNotFound(err)).To(BeTrue(), "queue %s should be gone, got %v", q, err)
		}
		_, err := mgmt.GetExchange("/", queue+".dlx")
		Expect(isNotFound(err)).To(BeTrue())
		_, err = mgmt.GetPolicy("/", "eventstream."+ns+".stream")
		Expect(isNotFound(err)).To(BeTrue())
		_, err = mgmt.GetExchange("/", queue+".topic")
		Expect(err).NotTo(HaveOccurred(), "the exchange is shared with publishers and is kept unless asked")
	})

	It("deletes an unused exchange when asked, but not one another stream uses", func() {
		shared := queue + ".topic"
		other := newStream(ns, "rabbitmq", queue+"-other", func(es *esv1.EventStream) {
			es.Name = "other"
			es.Spec.Exchange.Name = esv1.BrokerObjectName(shared)
		})
		es := newStream(ns, "rabbitmq", queue, func(es *esv1.EventStream) { es.Spec.Exchange.DeleteWhenUnused = true })
		eventuallyReady(other)
		eventuallyReady(es)

		Expect(k8sClient.Delete(ctx, es)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(es), &esv1.EventStream{}))
		}, 20*time.Second, 200*time.Millisecond).Should(BeTrue())
		_, err := mgmt.GetExchange("/", shared)
		Expect(err).NotTo(HaveOccurred(), "another EventStream uses the exchange")

		updateStream(other, func(got *esv1.EventStream) {
			got.Spec.Exchange.DeleteWhenUnused = true
		})
		eventuallyReady(other)
		Expect(k8sClient.Delete(ctx, other)).To(Succeed())
		Eventually(func() bool {
			_, err := mgmt.GetExchange("/", shared)
			return isNotFound(err)
		}, 20*time.Second, 200*time.Millisecond).Should(BeTrue())
	})

	It("keeps everything with deletionPolicy Retain", func() {
		es := newStream(ns, "rabbitmq", queue, func(es *esv1.EventStream) { es.Spec.DeletionPolicy = esv1.DeletionPolicyRetain })
		eventuallyReady(es)
		Expect(k8sClient.Delete(ctx, es)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(es), &esv1.EventStream{}))
		}, 20*time.Second, 200*time.Millisecond).Should(BeTrue())
		_, err := mgmt.GetQueue("/", queue)
		Expect(err).NotTo(HaveOccurred())
		_, err = mgmt.GetPolicy("/", "eventstream."+ns+".stream")
		Expect(err).NotTo(HaveOccurred())
		_, err = mgmt.GetQueue("/", queue+".dlq")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			_, _ = mgmt.DeleteQueue("/", queue)
			_, _ = mgmt.DeleteQueue("/", queue+".dlq")
			_, _ = mgmt.DeletePolicy("/", "eventstream."+ns+".stream")
		})
	})

	It("reports QueueArgumentsConflict for a conflicting queue without a hot loop, and recovers when fixed", func() {
		_, err := mgmt.DeclareQueue("/", queue, rabbithole.QueueSettings{
			Durable:   true,
			Arguments: map[string]any{"x-queue-type": "quorum", "x-message-ttl": 1000},
		})
		Expect(err).NotTo(HaveOccurred())
		es := newStream(ns, "rabbitmq", queue, nil)

		Eventually(func(g Gomega) {
			c := conditionOf(fetch(es)(g), esv1.ConditionTopologyReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(esv1.ReasonQueueArgumentsConflict))
			g.Expect(c.Message).To(ContainSubstring("x-queue-type (is quorum, declared classic)"))
			g.Expect(c.Message).To(ContainSubstring("x-message-ttl"))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		Expect(conditionOf(fetch(es)(Default), esv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		stalledCondition := conditionOf(fetch(es)(Default), esv1.ConditionStalled)
		Expect(stalledCondition.Status).To(Equal(metav1.ConditionTrue), "kstatus: a human must act")
		Expect(stalledCondition.Reason).To(Equal(esv1.ReasonQueueArgumentsConflict))

		// Without a hot loop the queue is looked at once per resync period at most.
		start := calls.get(queue)
		window := 3 * testResync
		Consistently(func() int { return calls.get(queue) - start }, window, 100*time.Millisecond).
			Should(BeNumerically("<=", int(window/Jitter(testResync))+2))

		_, err = mgmt.DeleteQueue("/", queue)
		Expect(err).NotTo(HaveOccurred())
		eventuallyReady(es)
		q, err := mgmt.GetQueue("/", queue)
		Expect(err).NotTo(HaveOccurred())
		Expect(q.Arguments).To(Equal(map[string]any{"x-queue-type": "classic"}))
	})

	It("reports SecretNotFound and reconciles as soon as the Secret is created", func() {
		es := newStream(ns, "missing", queue, nil)
		Eventually(func(g Gomega) {
			c := conditionOf(fetch(es)(g), esv1.ConditionTopologyReady)
			g.Expect(c.Reason).To(Equal(esv1.ReasonSecretNotFound))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		createConnectionSecret(ns, "missing", rmq)
		eventuallyReady(es)
	})

	It("reports SecretInvalid for a Secret without a usable uri", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken"},
			StringData: map[string]string{"uri": "http://user:hunter2@example.com"},
		})).To(Succeed())
		es := newStream(ns, "broken", queue, nil)
		Eventually(func(g Gomega) {
			c := conditionOf(fetch(es)(g), esv1.ConditionTopologyReady)
			g.Expect(c.Reason).To(Equal(esv1.ReasonSecretInvalid))
			g.Expect(c.Message).To(ContainSubstring("amqp://"))
			g.Expect(c.Message).NotTo(ContainSubstring("hunter2"))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	})
})

var _ = Describe("Topology with a broker that goes away", Ordered, func() {
	var (
		node  *rabbitmqtest.Node
		ns    string
		queue string
		es    *esv1.EventStream
	)
	ctx := context.Background()

	BeforeAll(func() {
		node = rabbitmqtest.Dedicated(GinkgoT(), "topology-faults")
		ns = newNamespace()
		queue = uniqueName("fault")
		createConnectionSecret(ns, "rabbitmq", node)
		es = newStream(ns, "rabbitmq", queue, nil)
		eventuallyReady(es)
	})

	It("reports BrokerUnreachable while the broker is stopped and is Ready again after it starts", func() {
		node.Stop(GinkgoT())
		Eventually(func(g Gomega) {
			got := fetch(es)(g)
			c := conditionOf(got, esv1.ConditionTopologyReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(esv1.ReasonBrokerUnreachable))
			g.Expect(conditionOf(got, esv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
		node.Start(GinkgoT())
		eventuallyReady(es)
	})

	It("completes deletion within the deletion timeout while the broker is stopped", func() {
		node.Stop(GinkgoT())
		Expect(k8sClient.Delete(ctx, es)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(es), &esv1.EventStream{}))
		}, testDeletionTimeout+20*time.Second, 250*time.Millisecond).Should(BeTrue())
		Expect(eventReasons(ns)).To(ContainElement("TopologyCleanupAbandoned"))
	})
})

func ptr[T any](v T) *T { return &v }

// updateStream applies mutate to the latest version of es, retrying on conflicts with the
// operator's own writes.
func updateStream(es *esv1.EventStream, mutate func(*esv1.EventStream)) {
	Eventually(func(g Gomega) {
		got := fetch(es)(g)
		mutate(got)
		g.Expect(k8sClient.Update(context.Background(), got)).To(Succeed())
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}
