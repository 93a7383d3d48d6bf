//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/eventstream-operator/eventstream-operator/controllers"
	"github.com/eventstream-operator/eventstream-operator/test/apptest"
)

// The application stack the product is built for (issue 16), on the cluster: the Celery
// worker and the aio-pika publisher of examples/python run on the host and publish to the
// run's broker; examples/nextjs, built against the bridge Service's ClusterIP and served by
// `next start` on the host, mints the page's tokens from the sample's jwt Secret; headless
// Chromium opens the page and the specs read its DOM.
const (
	stackTeam, stackOtherTeam = "42", "43"
	// stackTokenSeconds is the lifetime of the page's tokens: the page reopens its stream with
	// a fresh token every 4 s (80 %), several times while a job runs.
	stackTokenSeconds = 5
)

// applicationStackSpecs registers the stack's specs in the Ordered container of
// operator_test.go, in namespace ns (the sample's jwt Secret and the Service rabbitmq are
// there). They run on an EventStream of their own, a stream queue read by two bridge replicas
// with JWT auth, deleted when they end.
func applicationStackSpecs(ns, suffix string) {
	Describe("the application stack: Celery and aio-pika publish, the Next.js page shows", Ordered, func() {
		var (
			name      = "stack"
			queue     = "e2e-" + suffix + ".stack"
			taskQueue = "e2e-" + suffix + ".celery" // the Celery worker's task queue
			pageBase  string                        // `next start`'s base URL
			pythonEnv []string
		)

		BeforeAll(func() {
			kubectlApply(ns, streamEventStream(name, queue, "{jwt: {secretRef: {name: "+jwtSecretName+"}}}"))
			DeferCleanup(func() {
				kubectl("delete", "eventstream", name, "-n", ns, "--ignore-not-found", "--timeout=120s")
			})
			// `next build` compiles the rewrite to the bridge: it runs once the operator created
			// the Service (its ClusterIP is the target, through kube-proxy whichever pod serves),
			// while the bridge pods start.
			var clusterIP string
			Eventually(func() string {
				out, _ := command{name: cfg.Kubectl, args: []string{"get", "service", name + "-bridge", "-n", ns, "-o", "jsonpath={.spec.clusterIP}"}}.run()
				clusterIP = strings.TrimSpace(out)
				return clusterIP
			}).ShouldNot(BeEmpty())
			appDir := GinkgoT().TempDir()
			built := make(chan error, 1)
			go func() { built <- apptest.BuildNextApp(appDir, "http://"+clusterIP) }()

			kubectl("wait", "--for=condition=Ready", "evs/"+name, "-n", ns, "--timeout=180s")
			Eventually(func(g Gomega) {
				cols, err := printedColumns(ns, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cols).To(HaveKeyWithValue("TYPE", "stream"))
				g.Expect(cols).To(HaveKeyWithValue("REPLICAS", "2/2"))
			}).Should(Succeed())

			pythonEnv = apptest.PythonEnv(GinkgoT(), cfg.RabbitMQURI, exchange)
			mgmt := managementClient()
			// Registered before the worker starts, so it runs after the worker stopped.
			DeferCleanup(func() {
				_, _ = mgmt.DeleteQueue("/", taskQueue)
				_, _ = mgmt.DeleteExchange("/", taskQueue) // Celery's direct exchange of the queue
			})
			apptest.StartCeleryWorker(GinkgoT(), pythonEnv, taskQueue)

			var buildErr error
			Eventually(built).WithTimeout(5 * time.Minute).Should(Receive(&buildErr))
			Expect(buildErr).NotTo(HaveOccurred())
			pageBase = apptest.StartNext(GinkgoT(), appDir,
				"EVENTS_JWT_SECRET="+jwtKey(ns), "EVENTS_TOKEN_TTL_SECONDS="+strconv.Itoa(stackTokenSeconds))
		})

		It("shows a Celery job of team 42 and aio-pika's event in order up to 100 %, never team 43's, across token refreshes", func() {
			job := "celery-" + suffix
			tab := apptest.OpenTab(GinkgoT(), cfg.Chromium, pageBase+"/?team_id="+stackTeam+"&job_id="+job)
			tab.WaitFor("the stream to open", isLive)

			apptest.PublishWithAioPika(GinkgoT(), pythonEnv, stackTeam, job, "queued", 0, "waiting for a worker")
			tab.WaitFor("aio-pika's event", func(p apptest.PageState) bool { return len(p.Updates) == 1 })
			// Another tenant's event for the same job id, confirmed and routed to the stream.
			apptest.PublishWithAioPika(GinkgoT(), pythonEnv, stackOtherTeam, job, "running", 50, "another tenant's job")

			const steps, stepSeconds = 10, 1.0 // 10 s of work: more than two token refresh periods (4 s)
			reopensBefore := len(apptest.Reopened(tab.StreamRequests()))
			apptest.SubmitJob(GinkgoT(), pythonEnv, taskQueue, stackTeam, job, steps, stepSeconds)
			last := tab.WaitFor("the job to succeed", lastStatusIs("succeeded"))

			// One stream keeps the publishers' order: team 43's event, published before the job,
			// would be on the page by now had the bridge not filtered it out.
			want := append([]apptest.Update{{Status: "queued", Progress: 0, Team: stackTeam}}, celeryJob(steps)...)
			Expect(last.Updates).To(Equal(want), "every status of the job, in order, and nothing of team 43")
			Expect(last.Notice).To(BeEmpty(), "the bridge reported no gap")

			reopens := apptest.Reopened(tab.StreamRequests()) // with a fresh token and the last event id
			Expect(len(reopens)-reopensBefore).To(BeNumerically(">=", 1), "the page refreshed its token while the job ran")
			Expect(tab.StreamStatuses()).To(HaveEach(BeEquivalentTo(200)), "every stream request was accepted")
			fmt.Fprintf(GinkgoWriter, "the page reopened its stream %d times with a fresh token, %d during the job\n",
				len(reopens), len(reopens)-reopensBefore)
		})

		It("loses nothing the publishers confirmed when the bridge pod serving the page is deleted", func() {
			job := "ha-" + suffix
			tab := apptest.OpenTab(GinkgoT(), cfg.Chromium, pageBase+"/?team_id="+stackTeam+"&job_id="+job)
			tab.WaitFor("the stream to open", isLive)

			const steps, stepSeconds = 20, 0.5
			apptest.SubmitJob(GinkgoT(), pythonEnv, taskQueue, stackTeam, job, steps, stepSeconds)
			aioPika := startAioPikaPublisher(pythonEnv, stackTeam, job)
			tab.WaitFor("both publishers' events", func(p apptest.PageState) bool {
				return len(queued(p.Updates)) >= 2 && len(p.Updates)-len(queued(p.Updates)) >= 2
			})

			// Right after a token refresh the page stays on one stream for 4 s: find its pod then.
			streams := len(tab.StreamRequests())
			tab.WaitFor("a token refresh", func(apptest.PageState) bool { return len(tab.StreamRequests()) > streams })
			victim := servingBridgePod(ns, name)
			fmt.Fprintf(GinkgoWriter, "the page is served by %s; deleting it\n", victim)
			kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
			Eventually(func(g Gomega) {
				pods, err := listPods(ns, bridgeSelector(name))
				g.Expect(err).NotTo(HaveOccurred())
				ready := readyPodNames(pods)
				g.Expect(ready).To(HaveLen(2))
				g.Expect(ready).NotTo(ContainElement(victim))
			}).Should(Succeed())

			// Events confirmed after the replacement reached the page: then the publisher stops.
			after := aioPika.count()
			tab.WaitFor("aio-pika's events after the replacement", func(p apptest.PageState) bool {
				return len(queued(p.Updates)) >= after+2
			})
			confirmed, err := aioPika.stop()
			Expect(err).NotTo(HaveOccurred())

			last := tab.WaitFor("every confirmed event and the job's end", func(p apptest.PageState) bool {
				return len(queued(p.Updates)) >= len(confirmed) && len(p.Updates)-len(queued(p.Updates)) >= steps+1
			})
			Expect(queued(last.Updates)).To(Equal(confirmed), "aio-pika: every confirmed event once, in order")
			Expect(notQueued(last.Updates)).To(Equal(celeryJob(steps)), "Celery: every status once, in order, up to 100 %")
			Expect(last.Notice).To(BeEmpty(), "the bridge reported no gap")
			fmt.Fprintf(GinkgoWriter, "the page shows %d events (%d from aio-pika); it opened %d streams\n",
				len(last.Updates), len(confirmed), len(tab.StreamRequests()))
		})
	})
}

// jwtKey is the HS256 key of the sample's jwt Secret, which the Next.js token route signs with.
func jwtKey(namespace string) string {
	GinkgoHelper()
	encoded := kubectl("get", "secret", jwtSecretName, "-n", namespace, "-o", "jsonpath={.data.secret}")
	key, err := base64.StdEncoding.DecodeString(encoded)
	Expect(err).NotTo(HaveOccurred())
	return string(key)
}

func isLive(p apptest.PageState) bool { return p.Connection == "live" }

func lastStatusIs(status string) func(apptest.PageState) bool {
	return func(p apptest.PageState) bool {
		return len(p.Updates) > 0 && p.Updates[len(p.Updates)-1].Status == status
	}
}

// celeryJob is what tasks.process_job publishes for team 42: running 0, one running per
// step, succeeded 100.
func celeryJob(steps int) []apptest.Update {
	out := []apptest.Update{{Status: "running", Progress: 0, Team: stackTeam}}
	for step := 1; step < steps; step++ {
		out = append(out, apptest.Update{Status: "running", Progress: step * 100 / steps, Team: stackTeam})
	}
	return append(out, apptest.Update{Status: "succeeded", Progress: 100, Team: stackTeam})
}

// queued are the updates of status queued (the aio-pika publisher's in these specs), in order.
func queued(updates []apptest.Update) []apptest.Update {
	var out []apptest.Update
	for _, u := range updates {
		if u.Status == "queued" {
			out = append(out, u)
		}
	}
	return out
}

// notQueued are the other updates (the Celery task's), in order.
func notQueued(updates []apptest.Update) []apptest.Update {
	var out []apptest.Update
	for _, u := range updates {
		if u.Status != "queued" {
			out = append(out, u)
		}
	}
	return out
}

// servingBridgePod is the bridge pod of stream whose metrics count the page's one client (the
// operator's own scraper reads them; pod IPs are reachable from the node).
func servingBridgePod(namespace, stream string) string {
	GinkgoHelper()
	scraper := controllers.NewHTTPScraper(5 * time.Second)
	var serving string
	Eventually(func(g Gomega) {
		pods, err := listPods(namespace, bridgeSelector(stream))
		g.Expect(err).NotTo(HaveOccurred())
		var clients int64
		for _, pod := range pods {
			if pod.DeletionTimestamp != nil {
				continue
			}
			url, ok := podMetricsURL(pod)
			g.Expect(ok).To(BeTrue(), "pod %s has an IP and a metrics port", pod.Name)
			figures, err := scraper.Scrape(context.Background(), url)
			g.Expect(err).NotTo(HaveOccurred())
			if figures.Clients > 0 {
				serving = pod.Name
			}
			clients += figures.Clients
		}
		// While the page reopens its stream, the old one may still be counted: wait until not.
		g.Expect(clients).To(BeEquivalentTo(1), "the page's stream is the only client")
	}).Should(Succeed())
	return serving
}

// podMetricsURL is the /metrics URL of a bridge pod (its port named metrics).
func podMetricsURL(pod corev1.Pod) (string, bool) {
	if pod.Status.PodIP == "" || len(pod.Spec.Containers) == 0 {
		return "", false
	}
	for _, p := range pod.Spec.Containers[0].Ports {
		if p.Name == controllers.BridgeMetricsPortName {
			return "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(p.ContainerPort))) + "/metrics", true
		}
	}
	return "", false
}

// aioPikaPublisher runs examples/python/publisher.py once per event, as a service would publish
// one status after another: "queued" for team on job with progress 1, 2, … (at most 100),
// until stop. It keeps the events the publisher printed, that is those the broker confirmed
// and routed. Its goroutine is owned by stop.
type aioPikaPublisher struct {
	quit, done chan struct{}
	mu         sync.Mutex
	confirmed  []apptest.Update
	err        error
}

func startAioPikaPublisher(env []string, team, job string) *aioPikaPublisher {
	p := &aioPikaPublisher{quit: make(chan struct{}), done: make(chan struct{})}
	go p.run(env, team, job)
	DeferCleanup(func() { _, _ = p.stop() })
	return p
}

func (p *aioPikaPublisher) run(env []string, team, job string) {
	defer close(p.done)
	for progress := 1; progress <= 100; progress++ {
		select {
		case <-p.quit:
			return
		default:
		}
		cmd := apptest.PythonCommand(env, "publisher.py", team, job, "queued", strconv.Itoa(progress))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var event struct {
			Status   string `json:"status"`
			Progress int    `json:"progress"`
			TeamID   string `json:"team_id"`
		}
		if err == nil {
			err = json.Unmarshal(out, &event)
		}
		p.mu.Lock()
		if err != nil {
			p.err = fmt.Errorf("publisher.py %s %s queued %d: %w\nstdout: %s\nstderr: %s", team, job, progress, err, out, stderr.String())
			p.mu.Unlock()
			return
		}
		p.confirmed = append(p.confirmed, apptest.Update{Status: event.Status, Progress: event.Progress, Team: event.TeamID})
		p.mu.Unlock()
	}
}

// count is the number of events confirmed so far.
func (p *aioPikaPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.confirmed)
}

// stop lets the running publish finish and returns the confirmed events. Safe to call more
// than once.
func (p *aioPikaPublisher) stop() ([]apptest.Update, error) {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]apptest.Update(nil), p.confirmed...), p.err
}
