//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Debian builds Prometheus without its Kubernetes service discovery (the package's NEWS:
// "Kubernetes support has been completely removed, due to the insane amount of dependencies
// in their client library"). The suite therefore does that discovery itself, against the
// cluster's API server, and hands the result to Prometheus over HTTP service discovery
// (http_sd_configs): the same targets with the same __meta_kubernetes_* labels that
// kubernetes_sd_configs would give for the roles `pod` and `endpointslice`, so that the scrape
// configuration keeps the relabelling the Prometheus Operator generates from a PodMonitor or a
// ServiceMonitor.

// sdTargetGroup is one group of the HTTP service discovery format.
type sdTargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// startKubernetesSD serves GET /?role=pod|endpointslice[&namespace=NS...] on a loopback port
// from the API server of kubeconfig; it is closed when the calling scope ends. It returns the
// base URL.
func startKubernetesSD(kubeconfig string) string {
	GinkgoHelper()
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	clientset, err := kubernetes.NewForConfig(restConfig)
	Expect(err).NotTo(HaveOccurred())
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		namespaces := r.URL.Query()["namespace"]
		if len(namespaces) == 0 {
			namespaces = []string{metav1.NamespaceAll}
		}
		var groups []sdTargetGroup
		for _, ns := range namespaces {
			var found []sdTargetGroup
			var err error
			switch role := r.URL.Query().Get("role"); role {
			case "pod":
				found, err = discoverPods(ctx, clientset, ns)
			case "endpointslice":
				found, err = discoverEndpointSlices(ctx, clientset, ns)
			default:
				err = fmt.Errorf("unknown role %q", role)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			groups = append(groups, found...)
		}
		if groups == nil {
			groups = []sdTargetGroup{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	}))
	DeferCleanup(server.Close)
	return server.URL
}

var invalidLabelChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// promLabelName is a Kubernetes label key as a meta label name suffix, as Prometheus makes it.
func promLabelName(key string) string { return invalidLabelChars.ReplaceAllString(key, "_") }

func addLabels(into map[string]string, prefix string, labels map[string]string) {
	for k, v := range labels {
		into[prefix+"label_"+promLabelName(k)] = v
		into[prefix+"labelpresent_"+promLabelName(k)] = "true"
	}
}

// discoverPods is the role `pod`: one target per declared container port of each pod with
// an IP, labelled like Prometheus's Kubernetes discovery.
func discoverPods(ctx context.Context, clientset kubernetes.Interface, namespace string) ([]sdTargetGroup, error) {
	pods, err := clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var groups []sdTargetGroup
	for _, pod := range pods.Items {
		if pod.Status.PodIP == "" {
			continue
		}
		ready := "false"
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = "true"
			}
		}
		for _, c := range pod.Spec.Containers {
			for _, port := range c.Ports {
				labels := map[string]string{
					"__meta_kubernetes_namespace":                   pod.Namespace,
					"__meta_kubernetes_pod_name":                    pod.Name,
					"__meta_kubernetes_pod_ip":                      pod.Status.PodIP,
					"__meta_kubernetes_pod_ready":                   ready,
					"__meta_kubernetes_pod_phase":                   string(pod.Status.Phase),
					"__meta_kubernetes_pod_node_name":               pod.Spec.NodeName,
					"__meta_kubernetes_pod_container_name":          c.Name,
					"__meta_kubernetes_pod_container_port_name":     port.Name,
					"__meta_kubernetes_pod_container_port_number":   strconv.Itoa(int(port.ContainerPort)),
					"__meta_kubernetes_pod_container_port_protocol": string(port.Protocol),
				}
				addLabels(labels, "__meta_kubernetes_pod_", pod.Labels)
				groups = append(groups, sdTargetGroup{
					Targets: []string{net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port.ContainerPort)))},
					Labels:  labels,
				})
			}
		}
	}
	return groups, nil
}

// discoverEndpointSlices is the role `endpointslice`: one target per address and port of each
// EndpointSlice, labelled with its Service's labels and, for pod endpoints, the pod's name.
func discoverEndpointSlices(ctx context.Context, clientset kubernetes.Interface, namespace string) ([]sdTargetGroup, error) {
	slices, err := clientset.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list EndpointSlices: %w", err)
	}
	services, err := clientset.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Services: %w", err)
	}
	serviceLabels := map[string]map[string]string{}
	for _, s := range services.Items {
		serviceLabels[s.Namespace+"/"+s.Name] = s.Labels
	}
	var groups []sdTargetGroup
	for _, slice := range slices.Items {
		service := slice.Labels["kubernetes.io/service-name"]
		for _, endpoint := range slice.Endpoints {
			for _, port := range slice.Ports {
				if port.Port == nil {
					continue
				}
				for _, address := range endpoint.Addresses {
					labels := map[string]string{
						"__meta_kubernetes_namespace":          slice.Namespace,
						"__meta_kubernetes_endpointslice_name": slice.Name,
						"__meta_kubernetes_service_name":       service,
					}
					if port.Name != nil {
						labels["__meta_kubernetes_endpointslice_port_name"] = *port.Name
					}
					if endpoint.Conditions.Ready != nil {
						labels["__meta_kubernetes_endpointslice_endpoint_conditions_ready"] = strconv.FormatBool(*endpoint.Conditions.Ready)
					}
					if ref := endpoint.TargetRef; ref != nil && ref.Kind == "Pod" {
						labels["__meta_kubernetes_pod_name"] = ref.Name
					}
					addLabels(labels, "__meta_kubernetes_service_", serviceLabels[slice.Namespace+"/"+service])
					groups = append(groups, sdTargetGroup{
						Targets: []string{net.JoinHostPort(address, strconv.Itoa(int(*port.Port)))},
						Labels:  labels,
					})
				}
			}
		}
	}
	return groups, nil
}

// sdURL is the discovery URL of role in namespaces (all when none).
func sdURL(base, role string, namespaces []string) string {
	q := []string{"role=" + role}
	for _, ns := range namespaces {
		q = append(q, "namespace="+ns)
	}
	return base + "/?" + strings.Join(q, "&")
}
