package controllers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

func child[T client.Object](obj T, es *esv1.EventStream) func(Gomega) T {
	return func(g Gomega) T {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: es.Namespace, Name: bridgeName(es)}, obj)).To(Succeed())
		return obj
	}
}

func podTemplateHash(es *esv1.EventStream) func(Gomega) string {
	return func(g Gomega) string {
		return child(&appsv1.Deployment{}, es)(g).Spec.Template.Annotations[ConfigHashAnnotation]
	}
}

// markDeploymentAvailable plays the Deployment controller, which envtest does not run.
func markDeploymentAvailable(es *esv1.EventStream, n int32) {
	Eventually(func(g Gomega) {
		dep := child(&appsv1.Deployment{}, es)(g)
		dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n,
			UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		g.Expect(k8sClient.Status().Update(context.Background(), dep)).To(Succeed())
	}).Should(Succeed())
}

var _ = Describe("Bridge workload", func() {
	var ns, queue string
	ctx := context.Background()

	BeforeEach(func() {
		ns = newNamespace()
		queue = uniqueName("w")
		createConnectionSecret(ns, "rabbitmq", rmq)
	})

	It("creates ServiceAccount, Service, Deployment and PodDisruptionBudget owned by the stream", func() {
		es := newStream(ns, "rabbitmq", queue, func(es *esv1.EventStream) {
			es.Spec.Queue.Type = esv1.QueueTypeStream
			es.Spec.Bridge.Replicas = ptr(int32(2))
		})
		owned := func(g Gomega, o client.Object) {
			refs := o.GetOwnerReferences()
			g.Expect(refs).To(HaveLen(1))
			g.Expect(refs[0].Name).To(Equal("stream"))
			g.Expect(*refs[0].Controller).To(BeTrue())
		}
		Eventually(func(g Gomega) {
			owned(g, child(&corev1.ServiceAccount{}, es)(g))
			owned(g, child(&corev1.Service{}, es)(g))
			owned(g, child(&policyv1.PodDisruptionBudget{}, es)(g))
			dep := child(&appsv1.Deployment{}, es)(g)
			owned(g, dep)
			g.Expect(*dep.Spec.Replicas).To(Equal(int32(2)))
			g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testBridgeImage))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())

		Eventually(func(g Gomega) {
			got := fetch(es)(g)
			g.Expect(conditionOf(got, esv1.ConditionBridgeReady).Reason).To(Equal(esv1.ReasonBridgeProgressing))
			g.Expect(conditionOf(got, esv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		markDeploymentAvailable(es, 2)
		got := eventuallyReady(es)
		Expect(got.Status.Bridge.Endpoint).To(Equal(fmt.Sprintf("http://stream-bridge.%s.svc:80/api/v1/events", ns)))
		Expect(got.Status.Bridge.ReplicasText).To(Equal("2/2"))

		updateStream(es, func(got *esv1.EventStream) { got.Spec.Bridge.Replicas = ptr(int32(1)) })
		Eventually(func() bool {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stream-bridge"}, &policyv1.PodDisruptionBudget{})
			return client.IgnoreNotFound(err) == nil && err != nil
		}, 20*time.Second, 200*time.Millisecond).Should(BeTrue(), "one replica needs no PodDisruptionBudget")
		Eventually(func() []string { return eventReasons(ns) }).Should(ContainElement("BridgeScaled"))
	})

	It("reads the key each Secret reference defaults to when a manifest names only the Secret", func() {
		for name, key := range map[string]string{"jwt": "secret", "idp-key": "key.pem"} {
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Data: map[string][]byte{key: []byte("not read by the operator")}})).To(Succeed())
		}
		hs := newStream(ns, "rabbitmq", queue, func(es *esv1.EventStream) {
			es.Name = "hs256"
			es.Spec.Bridge.Auth = esv1.BridgeAuthSpec{JWT: &esv1.JWTAuthSpec{SecretRef: &esv1.HS256SecretReference{Name: "jwt"}}}
		})
		pem := newStream(ns, "rabbitmq", queue+"-pem", func(es *esv1.EventStream) {
			es.Name = "pem"
			es.Spec.Bridge.Auth = esv1.BridgeAuthSpec{JWT: &esv1.JWTAuthSpec{PublicKeySecretRef: &esv1.PublicKeySecretReference{Name: "idp-key"}}}
		})
		Eventually(func(g Gomega) {
			dep := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: bridgeName(hs)}, dep)).To(Succeed())
			var ref *corev1.SecretKeySelector
			for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
				if e.Name == envJWTHS256Secrets {
					ref = e.ValueFrom.SecretKeyRef
				}
			}
			g.Expect(ref).NotTo(BeNil(), "the HS256 secret reaches the pod from the Secret")
			g.Expect(ref.Name).To(Equal("jwt"))
			g.Expect(ref.Key).To(Equal("secret"))
			g.Expect(dep.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--auth-mode=jwt"))

			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: bridgeName(pem)}, dep)).To(Succeed())
			g.Expect(dep.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--auth-public-key-file=" + jwtKeyMountDir + "/key.pem"))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		Expect(fetch(hs)(Default).Status.Conditions).NotTo(ContainElement(HaveField("Type", esv1.ConditionInsecureAuth)))
	})

	It("shows an InsecureAuth condition and one Warning event while auth mode is none, and removes the condition for jwt", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		Eventually(func(g Gomega) {
			c := apimeta.FindStatusCondition(fetch(es)(g).Status.Conditions, esv1.ConditionInsecureAuth)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(esv1.ReasonAuthModeNone))
			g.Expect(c.Message).To(ContainSubstring("reads every tenant's events"))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		Eventually(func() []string { return eventReasons(ns) }).Should(ContainElement(esv1.ConditionInsecureAuth))

		updateStream(es, func(got *esv1.EventStream) {
			got.Spec.Bridge.Auth = esv1.BridgeAuthSpec{Mode: esv1.AuthModeJWT,
				JWT: &esv1.JWTAuthSpec{SecretRef: &esv1.HS256SecretReference{Name: "jwt"}}}
		})
		Eventually(func(g Gomega) {
			g.Expect(apimeta.FindStatusCondition(fetch(es)(g).Status.Conditions, esv1.ConditionInsecureAuth)).To(BeNil())
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		// The recorder folds repeats of an event into a series: count those too.
		var list eventsv1.EventList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		n := int32(0)
		for _, e := range list.Items {
			if e.Reason == esv1.ConditionInsecureAuth {
				n++
				if e.Series != nil {
					n += e.Series.Count - 1
				}
			}
		}
		Expect(n).To(BeEquivalentTo(1), "one Warning when the condition appeared, none per reconcile")
	})

	It("rolls the pod template when the spec or the Secret changes, and only then", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		var first string
		Eventually(func(g Gomega) { first = podTemplateHash(es)(g); g.Expect(first).NotTo(BeEmpty()) }, 20*time.Second).Should(Succeed())

		// A change the pods do not read, and a label on the Secret, leave the hash alone.
		updateStream(es, func(got *esv1.EventStream) {
			got.Spec.DeletionPolicy = esv1.DeletionPolicyRetain
		})
		got := fetch(es)(Default)
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rabbitmq"}, secret)).To(Succeed())
		secret.Labels = map[string]string{"touched": "yes"}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(fetch(es)(g).Status.ObservedGeneration).To(Equal(got.Generation)) }, 20*time.Second).Should(Succeed())
		Consistently(podTemplateHash(es), 3*time.Second, 250*time.Millisecond).Should(Equal(first))

		updateStream(es, func(got *esv1.EventStream) {
			got.Spec.Bridge.Heartbeat = &metav1.Duration{Duration: 5 * time.Second}
		})
		var second string
		Eventually(func(g Gomega) { second = podTemplateHash(es)(g); g.Expect(second).NotTo(Equal(first)) }, 20*time.Second).Should(Succeed())

		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rabbitmq"}, secret)).To(Succeed())
		secret.Data["uri"] = []byte(rmq.URI + "?heartbeat=10")
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		Eventually(podTemplateHash(es), 20*time.Second, 200*time.Millisecond).ShouldNot(Equal(second))
		Eventually(func() []string { return eventReasons(ns) }).Should(ContainElement("BridgeRollout"))
	})

	It("repairs children edited by hand and leaves fields it does not own alone", func() {
		es := newStream(ns, "rabbitmq", queue, nil)
		dep := &appsv1.Deployment{}
		Eventually(func(g Gomega) { dep = child(dep, es)(g) }, 20*time.Second).Should(Succeed())

		dep.Spec.Template.Spec.Containers[0].Image = "attacker/image:latest"
		dep.Spec.Template.Spec.Containers[0].Args = append(dep.Spec.Template.Spec.Containers[0].Args, "--auth-mode=none")
		dep.Annotations = map[string]string{"team.example.com/owner": "payments"}
		Expect(k8sClient.Update(ctx, dep)).To(Succeed())

		Eventually(func(g Gomega) {
			d := child(&appsv1.Deployment{}, es)(g)
			g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(testBridgeImage))
			g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(HaveLen(len(bridgeArgs(fetch(es)(g)))))
			g.Expect(d.Annotations).To(HaveKeyWithValue("team.example.com/owner", "payments"))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())

		svc := child(&corev1.Service{}, es)(Default)
		svc.Spec.Ports[0].Port = 9999
		Expect(k8sClient.Update(ctx, svc)).To(Succeed())
		Eventually(func(g Gomega) int32 { return child(&corev1.Service{}, es)(g).Spec.Ports[0].Port }, 20*time.Second).Should(Equal(int32(80)))
	})

	It("sums the metrics of real bridge processes into status, reports an unreachable pod, and shows them in kubectl get", func() {
		es := newStream(ns, "rabbitmq", queue, func(es *esv1.EventStream) {
			es.Spec.Queue.Type = esv1.QueueTypeStream
			es.Spec.Bridge.Replicas = ptr(int32(2))
		})
		eventuallyTopologyReady(es)
		bridgeBin := buildBridge()
		a := startBridge(bridgeBin, queue)
		b := startBridge(bridgeBin, queue)
		createBridgePod(es, "bridge-a", a.metricsPort)
		createBridgePod(es, "bridge-b", b.metricsPort)
		createBridgePod(es, "bridge-gone", freePort()) // nothing listens there
		markDeploymentAvailable(es, 2)

		// One SSE client on each bridge, and events through the broker.
		for _, br := range []*bridgeProcess{a, b} {
			openStream(br.httpPort)
		}
		publish(rmq.URI, queue+".topic", "team.1.job.2.status", 5)

		Eventually(func(g Gomega) {
			got := fetch(es)(g)
			g.Expect(got.Status.Bridge).NotTo(BeNil())
			g.Expect(got.Status.Bridge.Clients).To(Equal(int64(2)))
			g.Expect(got.Status.Bridge.Delivered).To(Equal(int64(10)), "5 events to a client on each of 2 bridges")
			g.Expect(got.Status.Bridge.UnscrapedPods).To(Equal([]string{"bridge-gone"}))
			g.Expect(conditionOf(got, esv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		}, 30*time.Second, 250*time.Millisecond).Should(Succeed())

		out, stderr, err := testEnv.ControlPlane.KubeCtl().Run("get", "evs", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), "%s", stderr)
		table := readAll(out)
		GinkgoWriter.Println(table)
		lines := strings.Split(strings.TrimSpace(table), "\n")
		Expect(lines).To(HaveLen(2))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "QUEUE", "TYPE", "REPLICAS", "CLIENTS", "LAG", "RECONNECTS", "DLQ", "AGE"}))
		row := strings.Fields(lines[1])
		Expect(row[:6]).To(Equal([]string{"stream", "True", queue, "stream", "2/2", "2"}))
		Expect(row[7]).To(Equal("0"), "no reconnects")
	})
})

func eventuallyTopologyReady(es *esv1.EventStream) {
	Eventually(func(g Gomega) {
		g.Expect(conditionOf(fetch(es)(g), esv1.ConditionTopologyReady).Status).To(Equal(metav1.ConditionTrue))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
}

var builtBridge string

// buildBridge builds cmd/bridge once per suite.
func buildBridge() string {
	if builtBridge != "" {
		return builtBridge
	}
	dir, err := os.MkdirTemp("", "evs-bridge-bin-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	bin, err := clitest.Compile(dir, clitest.BridgePackage, "")
	Expect(err).NotTo(HaveOccurred())
	builtBridge = bin
	return bin
}

type bridgeProcess struct {
	httpPort, metricsPort int
}

// startBridge runs the real bridge binary on a stream queue until the spec ends.
func startBridge(bin, queue string) *bridgeProcess {
	p := &bridgeProcess{httpPort: freePort(), metricsPort: freePort()}
	cmd := exec.Command(bin,
		"--queue="+queue, "--queue-type=stream", "--exchange="+queue+".topic", "--auth-mode=none",
		"--listen=127.0.0.1:"+strconv.Itoa(p.httpPort), "--metrics-listen=127.0.0.1:"+strconv.Itoa(p.metricsPort),
		"--log-format=text")
	cmd.Env = append(os.Environ(), "RABBITMQ_URL="+rmq.URI)
	cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	Eventually(func() int {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.metricsPort))
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
	return p
}

// openStream connects an SSE client that reads until the spec ends.
func openStream(port int) {
	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/api/v1/events", port), nil)
	Expect(err).NotTo(HaveOccurred())
	res, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(res.StatusCode).To(Equal(http.StatusOK))
	go func() {
		defer res.Body.Close()
		scanner := bufio.NewScanner(res.Body)
		for scanner.Scan() {
		}
	}()
}

// createBridgePod creates a Pod as the Deployment would, with the status a kubelet would set:
// running, ready, reachable on 127.0.0.1 with its metrics port.
func createBridgePod(es *esv1.EventStream, name string, metricsPort int) {
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: es.Namespace, Name: name, Labels: bridgeLabels(es)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: bridgeContainerName, Image: testBridgeImage,
			Ports: []corev1.ContainerPort{{Name: BridgeMetricsPortName, ContainerPort: int32(metricsPort)}},
		}}},
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func readAll(r interface{ Read([]byte) (int, error) }) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}
