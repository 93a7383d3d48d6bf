//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

const (
	chartDir    = "charts/eventstream-operator"
	crdName     = "eventstreams.sse.eventstream.dev"
	sampleFile  = "config/samples/eventstream_classic.yaml"
	sampleName  = "job-status" // the EventStream of sampleFile
	sampleQueue = "events.sse"
	exchange    = "events.topic"
	// jwtSecretName is the HS256 key Secret the classic sample references (key `secret`).
	jwtSecretName = "jwt"
)

// The specs run in order and build on each other, like a user's session: install, apply,
// use, break, change, delete, uninstall.
var _ = Describe("eventstream-operator on a real cluster", Ordered, func() {
	var (
		suffix        = randomSuffix()
		release       = "evs-" + suffix
		fullname      = release + "-eventstream-operator"
		systemNS      = "evs-system-" + suffix
		ns            = "e2e-" + suffix
		haName        = "ha"
		haQueue       = "e2e-" + suffix + ".stream"
		tenant, other = "t" + suffix, "u" + suffix

		mgmt         *rabbithole.Client
		chromium     *browser
		prom         *prometheusServer
		sampleURL    string
		tenantToken  string // minted by eventctl token from the sample's HS256 Secret
		sampleTail   *tailProcess
		sampleTab    *browserTab
		operatorPods = "app.kubernetes.io/name=eventstream-operator,app.kubernetes.io/instance=" + release
	)

	BeforeAll(func() {
		mgmt = managementClient()
		chromium = startBrowser()
		// From the start, so that its graphs show the whole session: installs, restarts, outage.
		prom = startPrometheus(release, systemNS)
		DeferCleanup(func() {
			if sampleTail != nil {
				sampleTail.stop()
			}
			if sampleTab != nil {
				sampleTab.close()
			}
			// Best effort after a failure: streams first (their finalizer needs the operator),
			// then the release, the namespaces and the CRD (kept by helm uninstall).
			_, _ = command{name: cfg.Kubectl, args: []string{"delete", "eventstreams", "--all", "-n", ns, "--timeout=90s", "--ignore-not-found"}}.run()
			_, _ = command{name: cfg.Helm, args: []string{"uninstall", release, "-n", systemNS, "--ignore-not-found", "--wait", "--timeout=90s"}}.run()
			_, _ = command{name: cfg.Kubectl, args: []string{"delete", "namespace", ns, systemNS, "--ignore-not-found", "--timeout=90s"}}.run()
			_, _ = command{name: cfg.Kubectl, args: []string{"delete", "crd", crdName, "--ignore-not-found", "--timeout=60s"}}.run()
		})
	})

	// Once without Helm: dist/install.yaml installs, runs a stream and goes (kustomize_install_test.go).
	kustomizeInstallSpecs()

	It("installs with helm; the operator pod runs the freshly built image and becomes Ready with only the chart's RBAC", func() {
		repository, tag, digest := splitImage(cfg.Image)
		helm("install", release, chartDir, "--namespace", systemNS, "--create-namespace",
			"--set", "image.repository="+repository, "--set", "image.tag="+tag, "--set", "image.pullPolicy=IfNotPresent",
			// Short intervals so status figures and drift repair show within the specs' timeouts.
			"--set", "statusInterval=2s", "--set", "resyncPeriod=30s", "--set", "deletionTimeout=30s")
		kubectl("rollout", "status", "deployment/"+fullname, "-n", systemNS, "--timeout=180s")
		kubectl("wait", "pod", "-l", operatorPods, "-n", systemNS, "--for=condition=Ready", "--timeout=120s")

		pods, err := listPods(systemNS, operatorPods)
		Expect(err).NotTo(HaveOccurred())
		Expect(pods).To(HaveLen(1))
		pod := pods[0]
		Expect(pod.Spec.ServiceAccountName).To(Equal(fullname), "the chart's ServiceAccount")
		Expect(pod.Spec.Containers[0].ImagePullPolicy).To(BeEquivalentTo("IfNotPresent"))
		Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
		Expect(pod.Status.ContainerStatuses[0].ImageID).To(HaveSuffix(digest), "the pod runs the image this run built")

		// The ServiceAccount has exactly the chart's rights: what the operator needs, not more.
		sa := "system:serviceaccount:" + systemNS + ":" + fullname
		canI := func(args ...string) string {
			out, _ := command{name: cfg.Kubectl, args: append(append([]string{"auth", "can-i"}, args...), "--as", sa)}.run()
			return strings.TrimSpace(out)
		}
		Expect(canI("patch", crdName, "--subresource=status", "-n", ns)).To(Equal("yes"))
		Expect(canI("create", "deployments.apps", "-n", ns)).To(Equal("yes"))
		Expect(canI("create", "clusterrolebindings")).To(Equal("no"))
		Expect(canI("delete", "nodes")).To(Equal("no"))
	})

	It("reconciles the sample: kubectl wait Ready, kubectl get evs shows real values", func() {
		kubectl("create", "namespace", ns)
		// As the sample's comment tells a user: the HS256 key Secret first, key `secret`.
		// The key goes through stdin, which the suite never logs (a command line is logged).
		_, err := command{name: cfg.Kubectl, args: []string{"create", "secret", "generic", jwtSecretName, "-n", ns,
			"--from-file=secret=/dev/stdin"}, stdin: randomSecret()}.run()
		Expect(err).NotTo(HaveOccurred())
		kubectlApply(ns, rabbitmqService(cfg.PodRabbitMQURI, cfg.PodManagementURI))
		kubectlApply(ns, sample())
		kubectl("wait", "--for=condition=Ready", "evs/"+sampleName, "-n", ns, "--timeout=180s")

		// The sample names only the Secret: the pod reads the key an HS256 reference defaults to.
		dep := &appsv1.Deployment{}
		Expect(getObject(ns, "deployment", sampleName+"-bridge", dep)).To(Succeed())
		var ref *corev1.SecretKeySelector
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == jwtSecretName {
				ref = e.ValueFrom.SecretKeyRef
			}
		}
		Expect(ref).NotTo(BeNil(), "the bridge reads the sample's JWT Secret")
		Expect(ref.Key).To(Equal("secret"))
		es, err := getEventStream(ns, sampleName)
		Expect(err).NotTo(HaveOccurred())
		Expect(es.Spec.Bridge.Auth.Mode).To(Equal(esv1.AuthModeJWT), "JWT is the default")
		Expect(apimeta.FindStatusCondition(es.Status.Conditions, esv1.ConditionInsecureAuth)).To(BeNil())

		Eventually(func(g Gomega) {
			cols, err := printedColumns(ns, sampleName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cols).To(HaveKeyWithValue("READY", "True"))
			g.Expect(cols).To(HaveKeyWithValue("QUEUE", sampleQueue))
			g.Expect(cols).To(HaveKeyWithValue("TYPE", "classic"))
			g.Expect(cols).To(HaveKeyWithValue("REPLICAS", "1/1"))
			g.Expect(cols).To(HaveKeyWithValue("CLIENTS", "0"))
			g.Expect(cols).To(HaveKeyWithValue("LAG", "0"))
			g.Expect(cols).To(HaveKeyWithValue("RECONNECTS", "0"))
			g.Expect(cols).To(HaveKeyWithValue("DLQ", "0"))
			g.Expect(cols).To(HaveKey("AGE"))
			es, err := getEventStream(ns, sampleName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(es.Status.Queue).NotTo(BeNil())
			g.Expect(es.Status.Queue.Consumers).To(BeEquivalentTo(1), "the bridge consumes the queue")
		}).Should(Succeed())

		es, err = getEventStream(ns, sampleName)
		Expect(err).NotTo(HaveOccurred())
		Expect(es.Status.ObservedGeneration).To(Equal(es.Generation))
		Expect(es.Status.Bridge.Endpoint).To(Equal("http://" + sampleName + "-bridge." + ns + ".svc:80/api/v1/events"))
		Expect(es.Finalizers).NotTo(BeEmpty())

		q, err := mgmt.GetQueue("/", sampleQueue)
		Expect(err).NotTo(HaveOccurred())
		Expect(q.Durable).To(BeTrue())
		Expect(bindingKeysFrom(mgmt, exchange, sampleQueue)).To(Equal([]string{"team.*.job.*.status"}))
	})

	It("delivers events published on the host through the Service ClusterIP to eventctl tail and Chromium, filtered by tenant", func() {
		sampleURL = serviceURL(ns, sampleName)
		// Without a token the bridge refuses, with a reason.
		resp, err := http.Get(sampleURL + "/api/v1/events?team_id=" + tenant)
		Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))

		tenantToken = mintToken(ns, tenant)
		path := "/api/v1/events?team_id=" + tenant + "&access_token=" + tenantToken
		// The tenant's clients live on into the fault specs; the other tenant's ends here.
		sampleTail = startTail(sampleURL + path)
		otherTail := startTail(sampleURL + "/api/v1/events?team_id=" + other + "&access_token=" + mintToken(ns, other))
		DeferCleanup(otherTail.stop)
		sampleTab = chromium.openEventSource(sampleURL, path)

		// The three clients are connected once the operator's status counts them.
		Eventually(func(g Gomega) {
			cols, err := printedColumns(ns, sampleName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cols).To(HaveKeyWithValue("CLIENTS", "3"))
		}).Should(Succeed())

		// One queue keeps order: once the tenant's last event arrived, the other tenant's
		// event published before it would have arrived too, had it not been filtered out.
		Expect(publish(tenant, "1", "first")).To(Succeed())
		Expect(publish(other, "1", "not yours")).To(Succeed())
		Expect(publish(tenant, "2", "second")).To(Succeed())

		Eventually(func() []string { return messages(sampleTail.received()) }).Should(Equal([]string{"first", "second"}))
		Eventually(func() ([]string, error) {
			r, err := sampleTab.received()
			return messages(r), err
		}).Should(Equal([]string{"first", "second"}))
		Eventually(func() []string { return messages(otherTail.received()) }).Should(Equal([]string{"not yours"}))
		Expect(teams(sampleTail.received())).To(HaveEach(tenant))
		r, err := sampleTab.received()
		Expect(err).NotTo(HaveOccurred())
		Expect(teams(r)).To(HaveEach(tenant))
		Expect(r[0].ID).NotTo(BeEmpty(), "events carry ids for Last-Event-ID")

		Eventually(func(g Gomega) {
			es, err := getEventStream(ns, sampleName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(es.Status.Bridge.Delivered).To(BeNumerically(">=", 5), "2 events to 2 clients of the tenant, 1 to the other")
		}).Should(Succeed())
	})

	It("keeps clients when the bridge pod is deleted: they reconnect and get new events", func() {
		old, err := listPods(ns, bridgeSelector(sampleName))
		Expect(err).NotTo(HaveOccurred())
		Expect(readyPodNames(old)).To(HaveLen(1))
		tailReconnects := sampleTail.reconnects()

		kubectl("delete", "pod", "-n", ns, "-l", bridgeSelector(sampleName), "--wait=false")
		Eventually(func(g Gomega) {
			pods, err := listPods(ns, bridgeSelector(sampleName))
			g.Expect(err).NotTo(HaveOccurred())
			ready := readyPodNames(pods)
			g.Expect(ready).To(HaveLen(1))
			g.Expect(ready).NotTo(ContainElement(old[0].Name))
		}).Should(Succeed())

		// Publish markers until one reaches both clients: they are connected again.
		marker := 0
		Eventually(func(g Gomega) {
			marker++
			text := "after restart " + strconv.Itoa(marker)
			g.Expect(publish(tenant, "3", text)).To(Succeed())
			g.Eventually(func() []string { return messages(sampleTail.received()) }).
				WithTimeout(3 * time.Second).Should(ContainElement(text))
			g.Eventually(func() ([]string, error) {
				r, err := sampleTab.received()
				return messages(r), err
			}).WithTimeout(3 * time.Second).Should(ContainElement(text))
		}).Should(Succeed())

		Expect(sampleTail.reconnects()).To(BeNumerically(">", tailReconnects), "eventctl tail reconnected")
		seen, err := sampleTab.seen()
		Expect(err).NotTo(HaveOccurred())
		Expect(seen.Opens).To(BeNumerically(">=", 2), "the browser's EventSource reconnected")
	})

	It("on a stream queue with two replicas, clients resuming with Last-Event-ID miss nothing while every bridge pod is replaced", func() {
		kubectlApply(ns, streamEventStream(haName, haQueue, "{mode: none}"))
		kubectl("wait", "--for=condition=Ready", "evs/"+haName, "-n", ns, "--timeout=180s")
		// Written out, auth mode none works and is flagged.
		kubectl("wait", "--for=condition=InsecureAuth", "evs/"+haName, "-n", ns, "--timeout=60s")
		Eventually(func() string {
			return kubectl("get", "events", "-n", ns, "--field-selector", "reason=InsecureAuth,type=Warning", "-o", "name")
		}).ShouldNot(BeEmpty())
		Eventually(func(g Gomega) {
			cols, err := printedColumns(ns, haName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cols).To(HaveKeyWithValue("TYPE", "stream"))
			g.Expect(cols).To(HaveKeyWithValue("REPLICAS", "2/2"))
		}).Should(Succeed())

		haURL := serviceURL(ns, haName)
		path := "/api/v1/events?team_id=" + tenant
		tail := startTail(haURL + path)
		DeferCleanup(tail.stop)
		tab := chromium.openEventSource(haURL, path)
		DeferCleanup(tab.close)
		Eventually(func(g Gomega) {
			es, err := getEventStream(ns, haName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(es.Status.Bridge.Clients).To(BeEquivalentTo(2))
		}).Should(Succeed())

		publisher := startSequencePublisher(tenant, "9", 50*time.Millisecond)
		Eventually(func() int { return len(messages(tail.received())) }).Should(BeNumerically(">=", 10))

		// Replace the pods one after the other; whichever serves a client, it is replaced.
		pods, err := listPods(ns, bridgeSelector(haName))
		Expect(err).NotTo(HaveOccurred())
		originals := readyPodNames(pods)
		Expect(originals).To(HaveLen(2))
		for _, victim := range originals {
			kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
			Eventually(func(g Gomega) {
				pods, err := listPods(ns, bridgeSelector(haName))
				g.Expect(err).NotTo(HaveOccurred())
				ready := readyPodNames(pods)
				g.Expect(ready).To(HaveLen(2))
				g.Expect(ready).NotTo(ContainElement(victim))
			}).Should(Succeed())
		}
		// Events published after the last replacement arrive, then the publisher stops.
		after := publisher.count()
		Eventually(func() int { return len(messages(tail.received())) }).Should(BeNumerically(">=", after+10))
		published, err := publisher.stop()
		Expect(err).NotTo(HaveOccurred())

		want := sequence(published)
		Eventually(func() []string { return messages(tail.received()) }).Should(Equal(want), "eventctl tail: every event once, in order")
		Eventually(func() ([]string, error) {
			r, err := tab.received()
			return messages(r), err
		}).Should(Equal(want), "Chromium's EventSource: every event once, in order")
		Expect(gaps(tail.received())).To(BeZero())
		r, err := tab.received()
		Expect(err).NotTo(HaveOccurred())
		Expect(gaps(r)).To(BeZero())

		Expect(tail.reconnects()).To(BeNumerically(">=", 1))
		Expect(tail.stderr.String()).To(MatchRegexp(`Last-Event-ID "[0-9]+"`), "eventctl resumed from a stream offset")
		seen, err := tab.seen()
		Expect(err).NotTo(HaveOccurred())
		Expect(seen.Opens).To(BeNumerically(">=", 2), "the browser reconnected")
		fmt.Fprintf(GinkgoWriter, "%d events; eventctl reconnected %d times, Chromium opened %d times\n", published, tail.reconnects(), seen.Opens)
	})

	It("with snapshots on, Chromium's first render is exactly its team's latest job statuses then live updates, served alike by every replica, a replaced pod too; status shows the snapshot size", func() {
		// The job list: 200 jobs of team 42 that each went queued → running →
		// succeeded or failed, with jobs of team 43 changing between them. Team 42 reads with
		// a token of its own: the patch also turns JWT auth on (the sample's HS256 Secret).
		const listTeam, otherTeam, listJobs = "42", "43", 200
		kubectl("patch", "evs", haName, "-n", ns, "--type=merge", "-p",
			`{"spec":{"bridge":{"auth":{"mode":"jwt","jwt":{"secretRef":{"name":"`+jwtSecretName+`"}}},"snapshot":{"maxKeys":1000,"maxAge":"1h"}}}}`)
		token := mintToken(ns, listTeam)
		snapshotPods := func(g Gomega) []corev1.Pod {
			pods, err := listPods(ns, bridgeSelector(haName))
			g.Expect(err).NotTo(HaveOccurred())
			var ready []corev1.Pod
			for _, p := range pods {
				if slices.Contains(readyPodNames([]corev1.Pod{p}), p.Name) && slices.Contains(p.Spec.Containers[0].Args, "--snapshot-max-keys=1000") {
					ready = append(ready, p)
				}
			}
			g.Expect(ready).To(HaveLen(2), "two ready pods with snapshots on")
			return ready
		}
		Eventually(snapshotPods).WithTimeout(3 * time.Minute).Should(HaveLen(2))

		jobEvent := func(team string, job int, status, message string) events.Event {
			return events.Event{ID: events.NewID(), Type: "job.status", TeamID: team, JobID: strconv.Itoa(job),
				Status: status, Progress: 50, Message: message}
		}
		var history []events.Event
		for round, status := range []string{"queued", "running", "succeeded"} {
			for job := 1; job <= listJobs; job++ {
				latest := status
				if status == "succeeded" && job%7 == 0 {
					latest = "failed"
				}
				history = append(history, jobEvent(listTeam, job, latest, fmt.Sprintf("round %d", round+1)))
				if job%10 == 0 {
					history = append(history, jobEvent(otherTeam, job, status, fmt.Sprintf("round %d", round+1)))
				}
			}
		}
		Expect(publishEvents(history)).To(Succeed())
		var ofListTeam []events.Event
		for _, ev := range history {
			if ev.TeamID == listTeam {
				ofListTeam = append(ofListTeam, ev)
			}
		}
		want := jobList(ofListTeam)
		Expect(want).To(HaveLen(listJobs))

		// Every pod has read the history and serves the same complete snapshot, so the page's
		// first render does not depend on the pod the Service picks.
		sameOnEveryPod := func(g Gomega) {
			var first []string
			for i, pod := range snapshotPods(g) {
				datas, end, err := podSnapshot(pod, "access_token="+token)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(end).To(ContainSubstring(`"partial":false`))
				served := make([]events.Event, len(datas))
				for j, data := range datas {
					g.Expect(json.Unmarshal([]byte(data), &served[j])).To(Succeed())
				}
				g.Expect(jobList(served)).To(Equal(want), "pod %s serves the newest state of team %s's jobs", pod.Name, listTeam)
				if i == 0 {
					first = datas
				} else {
					g.Expect(datas).To(Equal(first), "pod %s serves another snapshot", pod.Name)
				}
			}
		}
		Eventually(sameOnEveryPod).Should(Succeed())

		// The page scoped by its token alone, through the Service: first render, then live
		// updates of its team only.
		haURL := serviceURL(ns, haName)
		page := chromium.openEventSource(haURL, "/api/v1/events?snapshot=1&access_token="+token)
		DeferCleanup(page.close)
		expectFirstRender(page, want)
		live := jobEvent(listTeam, 7, "running", "retry 1")
		Expect(publishEvents([]events.Event{jobEvent(otherTeam, 10, "running", "retry 1"), live})).To(Succeed())
		want[listTeam+"/7"] = jobStatus{Status: live.Status, Message: live.Message}
		expectPageShows(page, want, live)

		// The pod serving the page goes: the replacement rebuilds its store from the stream,
		// the page resumes on the other replica, and a page opened now renders the same list.
		victim := servingBridgePod(ns, haName)
		kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
		Eventually(func(g Gomega) {
			for _, p := range snapshotPods(g) {
				g.Expect(p.Name).NotTo(Equal(victim))
			}
		}).WithTimeout(3 * time.Minute).Should(Succeed())
		Eventually(sameOnEveryPod).Should(Succeed())
		Eventually(func(g Gomega) {
			seen, err := page.seen()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(seen.Opens).To(BeNumerically(">=", 2), "the page's EventSource reconnected")
		}).Should(Succeed())
		reopened := chromium.openEventSource(haURL, "/api/v1/events?team_id="+listTeam+"&snapshot=1&access_token="+token)
		DeferCleanup(reopened.close)
		expectFirstRender(reopened, want)
		live = jobEvent(listTeam, listJobs, "running", "retry 2")
		Expect(publishEvents([]events.Event{jobEvent(otherTeam, 20, "running", "retry 2"), live})).To(Succeed())
		want[listTeam+"/"+strconv.Itoa(listJobs)] = jobStatus{Status: live.Status, Message: live.Message}
		expectPageShows(page, want, live)
		expectPageShows(reopened, want, live)
		// The page resumed from its last id: no gap, no second snapshot.
		all, err := page.received()
		Expect(err).NotTo(HaveOccurred())
		Expect(gaps(all)).To(BeZero())
		Expect(slices.ContainsFunc(all[slices.IndexFunc(all, isSnapshotEnd)+1:], isSnapshotEnd)).To(BeFalse())
		seen, err := page.seen()
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "%d events published; each page rendered the %d jobs of its team first; the first page opened %d times\n",
			len(history)+4, listJobs, seen.Opens)

		Eventually(func(g Gomega) {
			es, err := getEventStream(ns, haName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(es.Status.Bridge.SnapshotKeys).To(BeNumerically(">=", listJobs))
			g.Expect(es.Status.Bridge.SnapshotBytes).To(BeNumerically(">", 0))
		}).WithTimeout(2 * time.Minute).Should(Succeed())
	})

	It("survives a RabbitMQ restart: clients stay connected, Prometheus fires the bridge-not-ready alert, status shows the reconnects, events flow again", func() {
		tailReconnects := sampleTail.reconnects()
		seen, err := sampleTab.seen()
		Expect(err).NotTo(HaveOccurred())
		browserOpens := seen.Opens
		pods, err := listPods(ns, bridgeSelector(sampleName))
		Expect(err).NotTo(HaveOccurred())
		bridgePod := readyPodNames(pods)
		Expect(bridgePod).To(HaveLen(1))
		alertLabels := map[string]string{"namespace": ns, "pod": bridgePod[0]}
		Expect(prom.alertState(bridgeNotReadyAlert, alertLabels)).To(BeEmpty(), "no alert while the broker runs")

		rabbitmqScript := filepath.Join(kubetest.ProjectRoot(), "hack", "rabbitmq.sh")
		_, err = command{name: rabbitmqScript, args: []string{"stop"}}.run()
		Expect(err).NotTo(HaveOccurred())
		// The bridge reports not-ready while the broker is away.
		Eventually(func(g Gomega) {
			es, err := getEventStream(ns, sampleName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(apimeta.IsStatusConditionTrue(es.Status.Conditions, esv1.ConditionReady)).To(BeFalse())
		}).Should(Succeed())
		// Prometheus scrapes the pod's broker_connected 0 and, after the rule's `for` (shortened
		// by startPrometheus), the chart's alert fires.
		outage := time.Now()
		Eventually(func() (string, error) { return prom.alertState(bridgeNotReadyAlert, alertLabels) }).
			WithTimeout(90*time.Second).Should(Equal("firing"), "%s for %v", bridgeNotReadyAlert, alertLabels)
		fmt.Fprintf(GinkgoWriter, "%s firing %v after the bridge reported not ready\n", bridgeNotReadyAlert, time.Since(outage).Round(time.Second))
		_, err = command{name: rabbitmqScript, args: []string{"start"}}.run()
		Expect(err).NotTo(HaveOccurred())

		for _, name := range []string{sampleName, haName} {
			Eventually(func(g Gomega) {
				cols, err := printedColumns(ns, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cols).To(HaveKeyWithValue("READY", "True"))
				reconnects, err := strconv.Atoi(cols["RECONNECTS"])
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(reconnects).To(BeNumerically(">=", 1))
			}).WithTimeout(3*time.Minute).Should(Succeed(), "EventStream %s", name)
		}

		marker := 0
		Eventually(func(g Gomega) {
			marker++
			text := "after broker restart " + strconv.Itoa(marker)
			g.Expect(publish(tenant, "4", text)).To(Succeed())
			g.Eventually(func() []string { return messages(sampleTail.received()) }).
				WithTimeout(3 * time.Second).Should(ContainElement(text))
			g.Eventually(func() ([]string, error) {
				r, err := sampleTab.received()
				return messages(r), err
			}).WithTimeout(3 * time.Second).Should(ContainElement(text))
		}).Should(Succeed())

		// The outage was the broker's: the bridge kept its clients' streams open throughout.
		Expect(sampleTail.reconnects()).To(Equal(tailReconnects), "eventctl tail stayed connected")
		seen, err = sampleTab.seen()
		Expect(err).NotTo(HaveOccurred())
		Expect(seen.Opens).To(Equal(browserOpens), "the browser's EventSource stayed connected")
		Eventually(func() (string, error) { return prom.alertState(bridgeNotReadyAlert, alertLabels) }).
			Should(BeEmpty(), "the alert resolves once the bridge consumes again")
	})

	It("Prometheus scrapes the operator and the bridge pods: every dashboard query returns data; its graph page shows the stream's clients and deliveries/s", func() {
		// After the outage on purpose: the reconcile-errors panel's counter has a series once a
		// reconcile failed (BrokerUnreachable), as in any cluster that ever lost its broker.
		// Events flow to the sample's two clients (eventctl tail, Chromium) while the spec runs.
		publisher := startSequencePublisher(tenant, "6", 200*time.Millisecond)
		Eventually(func() []string { return messages(sampleTail.received()) }).Should(ContainElement("seq 10"))

		Eventually(func(g Gomega) {
			targets, err := prom.targets()
			g.Expect(err).NotTo(HaveOccurred())
			up := map[string]bool{}
			for _, t := range targets {
				up[t.Labels["namespace"]+"/"+t.Labels["pod"]] = t.Health == "up"
				if t.Health != "up" {
					fmt.Fprintf(GinkgoWriter, "target %s %v: %s %s\n", t.ScrapePool, t.Labels, t.Health, t.LastError)
				}
			}
			operator, err := listPods(systemNS, operatorPods)
			g.Expect(err).NotTo(HaveOccurred())
			bridges, err := listPods(ns, bridgeSelector(sampleName))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(readyPodNames(operator)).To(HaveLen(1))
			g.Expect(readyPodNames(bridges)).To(HaveLen(1))
			g.Expect(up).To(HaveKeyWithValue(systemNS+"/"+readyPodNames(operator)[0], true), "the ServiceMonitor's target")
			g.Expect(up).To(HaveKeyWithValue(ns+"/"+readyPodNames(bridges)[0], true), "the PodMonitor's target")
		}).Should(Succeed())

		expectDashboardData(prom, ns, sampleName)
		clients, deliveries := streamGraphQueries(ns, sampleName)
		Eventually(func(g Gomega) {
			c, err := prom.query(clients)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c).To(HaveLen(1))
			g.Expect(c[0].Value).To(BeNumerically(">=", 2), "eventctl tail and Chromium")
			d, err := prom.query(deliveries)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d).To(HaveLen(1))
			g.Expect(d[0].Value).To(BeNumerically(">", 0), "events are delivered")
		}).Should(Succeed())
		// The graphs span the session so far: the pod replaced, the broker outage, these events.
		session := fmt.Sprintf("%dm", int(time.Since(prom.Started).Minutes())+1)
		screenshotGraphPage(chromium, prom, "prometheus-stream.png", session, clients, deliveries)

		_, err := publisher.stop()
		Expect(err).NotTo(HaveOccurred())
	})

	// Celery, aio-pika and the Next.js page on an EventStream of their own (stack_test.go).
	applicationStackSpecs(ns, suffix)

	It("follows TTL and binding-key changes applied with kubectl; the queue keeps its messages", func() {
		policy := "eventstream." + ns + "." + sampleName
		p, err := mgmt.GetPolicy("/", policy)
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Definition).To(HaveKeyWithValue("message-ttl", BeNumerically("==", 10*60*1000)), "the sample's default TTL")

		// No bridge pod (a terminating one still consumes while it drains), so no consumer:
		// published messages stay in the queue.
		kubectlApply(ns, sampleEventStream("10m", []string{"team.*.job.*.status"}, 0))
		Eventually(func(g Gomega) {
			pods, err := listPods(ns, bridgeSelector(sampleName))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods).To(BeEmpty())
			q, err := mgmt.GetQueue("/", sampleQueue)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(q.Consumers).To(BeZero())
		}).Should(Succeed())
		for i := range 5 {
			Expect(publish(tenant, "5", "kept "+strconv.Itoa(i))).To(Succeed())
		}
		Eventually(func() (int, error) {
			q, err := mgmt.GetQueue("/", sampleQueue)
			if err != nil {
				return 0, err
			}
			return q.Messages, nil
		}).WithTimeout(30 * time.Second).Should(Equal(5))

		kubectlApply(ns, sampleEventStream("30m", []string{"team.*.job.#", "audit.#"}, 0))
		Eventually(func(g Gomega) {
			p, err := mgmt.GetPolicy("/", policy)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Definition).To(HaveKeyWithValue("message-ttl", BeNumerically("==", 30*60*1000)))
			g.Expect(bindingKeysFrom(mgmt, exchange, sampleQueue)).To(Equal([]string{"audit.#", "team.*.job.#"}))
		}).Should(Succeed())
		q, err := mgmt.GetQueue("/", sampleQueue)
		Expect(err).NotTo(HaveOccurred())
		Expect(q.Messages).To(Equal(5), "the queue was changed in place, not re-created")
		Expect(q.Policy).To(Equal(policy))
		kubectl("wait", "--for=condition=Ready", "evs/"+sampleName, "-n", ns, "--timeout=120s")
		es, err := getEventStream(ns, sampleName)
		Expect(err).NotTo(HaveOccurred())
		Expect(es.Status.ObservedGeneration).To(Equal(es.Generation))
	})

	It("deletes the EventStreams: topology gone, no finalizer left, bridge objects collected", func() {
		// `kubectl delete all` does not reach EventStreams (their category is eventstream), so
		// it deletes no broker queue.
		kubectl("delete", "all", "--all", "-n", ns, "--wait=false")
		Expect(strings.Fields(kubectl("get", "eventstreams", "-n", ns, "-o", "name"))).To(HaveLen(2))
		_, err := mgmt.GetQueue("/", sampleQueue)
		Expect(err).NotTo(HaveOccurred())
		// It did delete the Service rabbitmq, which the operator needs to clean up: back with it.
		kubectlApply(ns, rabbitmqService(cfg.PodRabbitMQURI, cfg.PodManagementURI))

		kubectl("delete", "eventstreams", sampleName, haName, "-n", ns, "--timeout=120s")
		out := kubectl("get", "eventstreams", "-n", ns, "-o", "name")
		Expect(strings.TrimSpace(out)).To(BeEmpty(), "no EventStream is held by a finalizer")

		for _, queue := range []string{sampleQueue, sampleQueue + ".dlq", haQueue, haQueue + ".dlq"} {
			_, err := mgmt.GetQueue("/", queue)
			Expect(isNotFound(err)).To(BeTrue(), "queue %s: %v", queue, err)
		}
		for _, dlx := range []string{sampleQueue + ".dlx", haQueue + ".dlx"} {
			_, err := mgmt.GetExchange("/", dlx)
			Expect(isNotFound(err)).To(BeTrue(), "exchange %s: %v", dlx, err)
		}
		for _, name := range []string{sampleName, haName} {
			_, err := mgmt.GetPolicy("/", "eventstream."+ns+"."+name)
			Expect(isNotFound(err)).To(BeTrue(), "policy of %s: %v", name, err)
		}
		_, err = mgmt.GetExchange("/", exchange)
		Expect(err).NotTo(HaveOccurred(), "the shared exchange stays: publishers use it (deleteWhenUnused is off)")

		Eventually(func() string {
			out, _ := command{name: cfg.Kubectl, args: []string{"get", "deployments,services,serviceaccounts,pods",
				"-n", ns, "-l", "app.kubernetes.io/managed-by=eventstream-operator", "-o", "name"}}.run()
			return strings.TrimSpace(out)
		}).Should(BeEmpty())
	})

	It("helm uninstall leaves no operator objects behind (the CRD stays, by Helm's design)", func() {
		helm("uninstall", release, "-n", systemNS, "--wait", "--timeout=120s")
		selector := "app.kubernetes.io/instance=" + release
		Eventually(func() string {
			out, _ := command{name: cfg.Kubectl, args: []string{"get",
				"deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,configmaps,secrets",
				"-n", systemNS, "-l", selector, "-o", "name"}}.run()
			return strings.TrimSpace(out)
		}).Should(BeEmpty())
		out := kubectl("get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name")
		Expect(strings.TrimSpace(out)).To(BeEmpty())
		out = kubectl("get", "pods", "-n", systemNS, "-o", "name")
		Expect(strings.TrimSpace(out)).To(BeEmpty(), "no pod of the operator is left")

		// What the operator itself created at run time in its namespace: only the leader
		// election Lease, which goes with the namespace.
		leases := strings.Fields(kubectl("get", "leases", "-n", systemNS, "-o", "name"))
		fmt.Fprintf(GinkgoWriter, "left in %s by the operator at run time: %v\n", systemNS, leases)
		Expect(len(leases)).To(BeNumerically("<=", 1))

		// Helm installs crds/ but never deletes them (that would delete every EventStream).
		kubectl("get", "crd", crdName)
	})
})

// splitImage splits REGISTRY/NAME:TAG@sha256:DIGEST into the chart's image.repository and
// image.tag, and the digest.
func splitImage(ref string) (repository, tag, digest string) {
	GinkgoHelper()
	named, digest, ok := strings.Cut(ref, "@")
	Expect(ok).To(BeTrue(), "E2E_IMAGE %q has no digest", ref)
	i := strings.LastIndex(named, ":")
	Expect(i).To(BeNumerically(">", strings.LastIndex(named, "/")), "E2E_IMAGE %q has no tag", ref)
	return named[:i], named[i+1:], digest
}

// sample is config/samples/eventstream_classic.yaml as written: its Secret reaches the broker
// as amqp://…@rabbitmq:5672/, a Service name resolved by the cluster's DNS (see
// rabbitmqService).
func sample() string {
	GinkgoHelper()
	raw, err := os.ReadFile(filepath.Join(kubetest.ProjectRoot(), sampleFile))
	Expect(err).NotTo(HaveOccurred())
	Expect(string(raw)).To(ContainSubstring("uri: amqp://guest:guest@rabbitmq:5672/"), "the sample reaches the broker by its Service name")
	Expect(string(raw)).To(ContainSubstring("name: " + sampleName + "\n"))
	return string(raw)
}

// rabbitmqService is what a user's cluster has and this one lacks: a Service named rabbitmq
// in the stream's namespace, with the usual ports (AMQP 5672, management 15672). It has no
// selector: an EndpointSlice points it at the run's RabbitMQ node on the host, whose address
// and ports are those of the pods' URIs.
func rabbitmqService(podURI, podManagementURI string) string {
	GinkgoHelper()
	amqp, err := url.Parse(podURI)
	Expect(err).NotTo(HaveOccurred())
	mgmt, err := url.Parse(podManagementURI)
	Expect(err).NotTo(HaveOccurred())
	Expect(mgmt.Hostname()).To(Equal(amqp.Hostname()))
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: rabbitmq
spec:
  ports:
    - {name: amqp, port: 5672, targetPort: %[2]s}
    - {name: management, port: 15672, targetPort: %[3]s}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: rabbitmq-host
  labels: {kubernetes.io/service-name: rabbitmq}
addressType: IPv4
ports:
  - {name: amqp, port: %[2]s}
  - {name: management, port: %[3]s}
endpoints:
  - addresses: [%[1]q]
`, amqp.Hostname(), amqp.Port(), mgmt.Port())
}

// sampleEventStream is the sample's EventStream with a TTL, binding keys and bridge replicas.
func sampleEventStream(ttl string, bindingKeys []string, replicas int) string {
	return fmt.Sprintf(`apiVersion: sse.eventstream.dev/v1alpha1
kind: EventStream
metadata:
  name: %s
spec:
  rabbitmq:
    connectionSecret: {name: rabbitmq}
  queue:
    messageTTL: %s
  bindingKeys: [%s]
  bridge:
    replicas: %d
    auth:
      jwt:
        secretRef: {name: %s}
`, sampleName, ttl, quoted(bindingKeys), replicas, jwtSecretName)
}

// streamEventStream is a stream queue read by two bridge replicas with spec.bridge.auth as
// given (YAML flow), e.g. {mode: none} written out for development.
func streamEventStream(name, queue, auth string) string {
	return fmt.Sprintf(`apiVersion: sse.eventstream.dev/v1alpha1
kind: EventStream
metadata:
  name: %s
spec:
  rabbitmq:
    connectionSecret: {name: rabbitmq}
  queue:
    name: %s
    type: stream
    messageTTL: 1h
    maxLengthBytes: 100000000
  bridge:
    replicas: 2
    heartbeat: 2s
    auth: %s
`, name, queue, auth)
}

func quoted(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
