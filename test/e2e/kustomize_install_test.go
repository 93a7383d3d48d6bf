//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
)

// kustomizeInstallSpecs registers, first in the Ordered container of operator_test.go, the
// install without Helm (docs/install.md), once: `make dist` renders config/default with the
// image this run built (DIST_IMAGE, the substitution the docs show), `kubectl apply
// --server-side` installs it, a stream becomes Ready, and `kubectl delete -f` removes it all,
// the CRD included, before the Helm install (which installs the CRD again from crds/). The
// cluster-scoped names of the two installs differ (eventstream-operator and the release's
// fullname), except the CRD, which never exists twice.
func kustomizeInstallSpecs() {
	Describe("the operator installed from dist/install.yaml (make dist)", Ordered, func() {
		const (
			systemNS = "eventstream-system" // config/default's namespace
			operator = "eventstream-operator"
		)
		var (
			suffix      = randomSuffix()
			ns          = "e2e-dist-" + suffix
			name        = "dist"
			queue       = "e2e-" + suffix + ".dist"
			installFile string
		)

		BeforeAll(func() {
			dir := GinkgoT().TempDir()
			_, err := command{name: "make", args: []string{"--no-print-directory", "dist",
				"DIST_DIR=" + dir, "DIST_IMAGE=" + cfg.Image, "KUBECTL=" + cfg.Kubectl}}.run()
			Expect(err).NotTo(HaveOccurred())
			installFile = filepath.Join(dir, "install.yaml")
			DeferCleanup(func() {
				// Best effort after a failure: the stream first (its finalizer needs the operator).
				_, _ = command{name: cfg.Kubectl, args: []string{"delete", "eventstreams", "--all", "-n", ns, "--timeout=90s", "--ignore-not-found"}}.run()
				_, _ = command{name: cfg.Kubectl, args: []string{"delete", "namespace", ns, "--ignore-not-found", "--timeout=90s"}}.run()
				_, _ = command{name: cfg.Kubectl, args: []string{"delete", "-f", installFile, "--ignore-not-found", "--timeout=120s"}}.run()
			})
		})

		It("kubectl apply --server-side of install.yaml runs the operator from the suite's image; a stream becomes Ready", func() {
			kubectl("apply", "--server-side", "--force-conflicts", "-f", installFile)
			kubectl("rollout", "status", "deployment/"+operator, "-n", systemNS, "--timeout=180s")
			pods, err := listPods(systemNS, "app.kubernetes.io/name="+operator)
			Expect(err).NotTo(HaveOccurred())
			Expect(readyPodNames(pods)).To(HaveLen(1))
			_, _, digest := splitImage(cfg.Image)
			Expect(pods[0].Status.ContainerStatuses[0].ImageID).To(HaveSuffix(digest), "the operator runs the image this run built")

			kubectl("create", "namespace", ns)
			kubectlApply(ns, rabbitmqService(cfg.PodRabbitMQURI, cfg.PodManagementURI))
			kubectlApply(ns, classicEventStreamWithoutAuth(name, queue))
			kubectl("wait", "--for=condition=Ready", "evs/"+name, "-n", ns, "--timeout=180s")

			dep := &appsv1.Deployment{}
			Expect(getObject(ns, "deployment", name+"-bridge", dep)).To(Succeed())
			Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(cfg.Image), "the bridge runs the operator's image (BRIDGE_IMAGE)")
			_, err = managementClient().GetQueue("/", queue)
			Expect(err).NotTo(HaveOccurred())
		})

		It("kubectl delete -f install.yaml, after the stream, removes the install and the CRD", func() {
			kubectl("delete", "eventstream", name, "-n", ns, "--timeout=120s")
			_, err := managementClient().GetQueue("/", queue)
			Expect(isNotFound(err)).To(BeTrue(), "the operator removed the stream's queue: %v", err)
			kubectl("delete", "namespace", ns, "--timeout=120s")

			kubectl("delete", "-f", installFile, "--timeout=180s")
			out, _ := command{name: cfg.Kubectl, args: []string{"get", "crd", crdName, "--ignore-not-found", "-o", "name"}}.run()
			Expect(strings.TrimSpace(out)).To(BeEmpty(), "the CRD went with install.yaml")
			out = kubectl("get", "clusterroles,clusterrolebindings", "-o", "name")
			Expect(out).NotTo(ContainSubstring("/"+operator+"\n"), "the cluster-scoped RBAC went too")
		})
	})
}

// classicEventStreamWithoutAuth is a classic queue with auth mode none written out, and the
// Secret rabbitmq it reaches the broker with (the Service rabbitmq of rabbitmqService).
func classicEventStreamWithoutAuth(name, queue string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: rabbitmq
stringData:
  uri: amqp://guest:guest@rabbitmq:5672/
---
apiVersion: sse.eventstream.dev/v1alpha1
kind: EventStream
metadata:
  name: %s
spec:
  rabbitmq:
    connectionSecret: {name: rabbitmq}
  queue:
    name: %s
  bridge:
    auth: {mode: none}
`, name, queue)
}
