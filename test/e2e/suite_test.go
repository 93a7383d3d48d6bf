//go:build e2e

// Package e2e proves the operator the way users run it, on a real single-node cluster
// (hack/cluster.sh): `helm install` of charts/eventstream-operator with a freshly built image,
// `kubectl apply` of the samples, events published with `eventctl publish` on the host and
// read through the bridge Service's ClusterIP by `eventctl tail` and by headless Chromium's
// EventSource, faults (bridge pods deleted, RabbitMQ stopped and started), spec changes
// followed by the broker, deletion and `helm uninstall`. Before the Helm install, the install
// without Helm runs once (kustomize_install_test.go: make dist, kubectl apply, kubectl delete).
// Debian's Prometheus scrapes the operator and the bridges as the chart's monitors select them
// and evaluates the chart's alerts (prometheus_test.go, kubernetes_sd_test.go); the specs check
// the dashboard's queries and the bridge-not-ready alert against it (monitoring_test.go). The
// examples a team copies run against it too (stack_test.go): a Celery worker and the aio-pika
// publisher on the host, the Next.js page served by `next start` and shown in Chromium.
//
// kubectl, helm and eventctl run as the real binaries. The suite is behind the build tag
// e2e, so `go test ./...` skips it; `make test-e2e` (hack/e2e.sh) brings up the cluster and
// a RabbitMQ node of its own, builds and pushes the image, and sets the environment read by
// loadConfig.
package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// config is what hack/e2e.sh hands to the suite through the environment.
type config struct {
	// Image is the pushed operator image with its digest: REGISTRY/NAME:TAG@sha256:...
	Image string
	// Kubectl, Helm, Eventctl, Chromium and Prometheus are the binaries the suite runs.
	Kubectl, Helm, Eventctl, Chromium, Prometheus string
	// RabbitMQURI and ManagementURI reach the dedicated RabbitMQ node from the host;
	// PodRabbitMQURI and PodManagementURI reach the same node from pods.
	RabbitMQURI, ManagementURI       string
	PodRabbitMQURI, PodManagementURI string
}

var cfg config

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "eventstream-operator end-to-end")
}

var _ = BeforeSuite(func() {
	var err error
	cfg, err = loadConfig(os.Getenv)
	Expect(err).NotTo(HaveOccurred())
	SetDefaultEventuallyTimeout(2 * time.Minute)
	SetDefaultEventuallyPollingInterval(500 * time.Millisecond)
	SetDefaultConsistentlyDuration(3 * time.Second)
})

// loadConfig reads the suite's settings; every missing one is named in the error.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Image:            getenv("E2E_IMAGE"),
		Kubectl:          getenv("KUBECTL"),
		Helm:             getenv("HELM"),
		Eventctl:         getenv("EVENTCTL"),
		Chromium:         getenv("CHROMIUM"),
		Prometheus:       getenv("PROMETHEUS"),
		RabbitMQURI:      getenv("E2E_RABBITMQ_URI"),
		ManagementURI:    getenv("E2E_RABBITMQ_MANAGEMENT_URI"),
		PodRabbitMQURI:   getenv("E2E_RABBITMQ_POD_URI"),
		PodManagementURI: getenv("E2E_RABBITMQ_POD_MANAGEMENT_URI"),
	}
	if c.Kubectl == "" {
		c.Kubectl = "kubectl"
	}
	if c.Chromium == "" {
		c.Chromium = "/usr/bin/chromium"
	}
	if c.Prometheus == "" {
		c.Prometheus = "/usr/bin/prometheus"
	}
	required := map[string]string{
		"E2E_IMAGE": c.Image, "HELM": c.Helm, "EVENTCTL": c.Eventctl, "KUBECONFIG": getenv("KUBECONFIG"),
		"E2E_RABBITMQ_URI": c.RabbitMQURI, "E2E_RABBITMQ_MANAGEMENT_URI": c.ManagementURI,
		"E2E_RABBITMQ_POD_URI": c.PodRabbitMQURI, "E2E_RABBITMQ_POD_MANAGEMENT_URI": c.PodManagementURI,
	}
	var missing []string
	for name, value := range required {
		if value == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("environment %v not set: run the suite with `make test-e2e` (hack/e2e.sh)", missing)
	}
	return c, nil
}
