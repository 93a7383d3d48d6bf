//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// Debian's Prometheus on the host, set up from what the chart ships: its targets are those the
// chart's PodMonitor and ServiceMonitor select (translated into the scrape configuration the
// Prometheus Operator generates, on Kubernetes service discovery against the cluster's API
// server: kubernetes_sd_test.go), its rules are the chart's PrometheusRule. Pods are reachable
// from the host by their IP, so it scrapes them directly.

const (
	// promInterval is the scrape and rule evaluation interval: the chart's 30 s would make
	// the specs wait minutes for two samples of a rate.
	promInterval = "2s"
	// bridgeNotReadyAlert is the alert the broker outage must fire; the suite loads it with
	// bridgeNotReadyFor instead of the rule's 2m, so it fires within seconds of the outage.
	bridgeNotReadyAlert = "EventStreamBridgeNotReady"
	bridgeNotReadyFor   = "10s"
)

// prometheusServer is a running prometheus process; stop ends it.
type prometheusServer struct {
	URL     string
	Started time.Time
	cmd     *exec.Cmd
	output  clitest.Output
	done    chan struct{}
}

// startPrometheus renders the chart's monitoring objects for release in namespace (as the
// install does), writes a Prometheus configuration and rule file from them into a temporary
// directory and starts cfg.Prometheus on a free loopback port. It returns once Prometheus is
// ready; stop is registered with DeferCleanup in the calling scope.
func startPrometheus(release, namespace string) *prometheusServer {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	rendered := helm("template", release, chartDir, "--namespace", namespace, "--show-only", "templates/monitoring.yaml",
		"--set", "monitoring.podMonitor.enabled=true", "--set", "monitoring.serviceMonitor.enabled=true",
		"--set", "monitoring.prometheusRule.enabled=true")
	discovery := startKubernetesSD(os.Getenv("KUBECONFIG"))
	var scrapeConfigs []any
	var rules map[string]any
	for _, doc := range strings.Split(rendered, "\n---") {
		var obj map[string]any
		Expect(yaml.Unmarshal([]byte(doc), &obj)).To(Succeed())
		if obj == nil {
			continue
		}
		switch obj["kind"] {
		case "PodMonitor", "ServiceMonitor":
			scrapeConfigs = append(scrapeConfigs, scrapeConfigOf(obj, discovery))
		case "PrometheusRule":
			rules = obj["spec"].(map[string]any)
		}
	}
	Expect(scrapeConfigs).To(HaveLen(2), "the chart renders a PodMonitor and a ServiceMonitor")
	Expect(rules).NotTo(BeNil(), "the chart renders a PrometheusRule")
	shortenFor(rules, bridgeNotReadyAlert, bridgeNotReadyFor)

	ruleFile := filepath.Join(dir, "rules.yaml")
	writeYAML(ruleFile, rules)
	configFile := filepath.Join(dir, "prometheus.yml")
	writeYAML(configFile, map[string]any{
		"global":         map[string]any{"scrape_interval": promInterval, "evaluation_interval": promInterval},
		"rule_files":     []string{ruleFile},
		"scrape_configs": scrapeConfigs,
	})

	address := freeLoopbackAddress()
	p := &prometheusServer{URL: "http://" + address, Started: time.Now(), done: make(chan struct{})}
	p.cmd = exec.Command(cfg.Prometheus, "--config.file="+configFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+address)
	p.cmd.Stdout, p.cmd.Stderr = &p.output, &p.output
	Expect(p.cmd.Start()).To(Succeed())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	DeferCleanup(p.stop)
	fmt.Fprintf(GinkgoWriter, "started prometheus on %s (pid %d), config %s\n", p.URL, p.cmd.Process.Pid, configFile)
	Eventually(func(g Gomega) {
		select {
		case <-p.done:
			StopTrying("prometheus exited:\n" + p.output.String()).Now()
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	}).WithTimeout(time.Minute).Should(Succeed())
	return p
}

// scrapeConfigOf translates a PodMonitor or ServiceMonitor of the chart into the scrape
// configuration the Prometheus Operator would generate for it: Kubernetes service discovery
// (pods, or the EndpointSlices of Services; served by discovery, see startKubernetesSD), kept
// by the monitor's matchLabels and port name, labelled with namespace, pod (and service), with
// the monitor's path and honorLabels.
func scrapeConfigOf(monitor map[string]any, discovery string) map[string]any {
	GinkgoHelper()
	kind := monitor["kind"].(string)
	meta := monitor["metadata"].(map[string]any)
	spec := monitor["spec"].(map[string]any)
	matchLabels := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
	Expect(matchLabels).NotTo(BeEmpty(), "%s selects by labels", kind)

	role, labelPrefix, portLabel := "pod", "__meta_kubernetes_pod_label_", "__meta_kubernetes_pod_container_port_name"
	endpointsKey := "podMetricsEndpoints"
	if kind == "ServiceMonitor" {
		role, labelPrefix, portLabel = "endpointslice", "__meta_kubernetes_service_label_", "__meta_kubernetes_endpointslice_port_name"
		endpointsKey = "endpoints"
	}
	// A monitor without a namespaceSelector watches its own namespace; `any: true` all of them.
	var namespaces []string
	if ns, _ := spec["namespaceSelector"].(map[string]any); ns["any"] != true {
		namespaces = []string{meta["namespace"].(string)}
		if matchNames, ok := ns["matchNames"].([]any); ok {
			namespaces = nil
			for _, n := range matchNames {
				namespaces = append(namespaces, n.(string))
			}
		}
	}
	endpoints := spec[endpointsKey].([]any)
	Expect(endpoints).To(HaveLen(1), "%s has one endpoint", kind)
	endpoint := endpoints[0].(map[string]any)

	var relabel []any
	for key, value := range matchLabels {
		relabel = append(relabel, map[string]any{"action": "keep",
			"source_labels": []string{labelPrefix + promLabelName(key)}, "regex": regexp.QuoteMeta(value.(string))})
	}
	relabel = append(relabel,
		map[string]any{"action": "keep", "source_labels": []string{portLabel}, "regex": regexp.QuoteMeta(endpoint["port"].(string))},
		map[string]any{"source_labels": []string{"__meta_kubernetes_namespace"}, "target_label": "namespace"},
		map[string]any{"source_labels": []string{"__meta_kubernetes_pod_name"}, "target_label": "pod"})
	if kind == "ServiceMonitor" {
		relabel = append(relabel, map[string]any{"source_labels": []string{"__meta_kubernetes_service_name"}, "target_label": "service"})
	}
	config := map[string]any{
		"job_name":        strings.ToLower(kind) + "/" + meta["namespace"].(string) + "/" + meta["name"].(string),
		"http_sd_configs": []any{map[string]any{"url": sdURL(discovery, role, namespaces), "refresh_interval": promInterval}},
		"relabel_configs": relabel,
		"metrics_path":    endpoint["path"],
		"scrape_interval": promInterval,
	}
	if endpoint["honorLabels"] == true {
		config["honor_labels"] = true
	}
	return config
}

// shortenFor sets the `for` of alert in the rule groups to duration, and only that field.
func shortenFor(rules map[string]any, alert, duration string) {
	GinkgoHelper()
	found := false
	for _, g := range rules["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			if rule := r.(map[string]any); rule["alert"] == alert {
				rule["for"] = duration
				found = true
			}
		}
	}
	Expect(found).To(BeTrue(), "the chart's rules have no alert %s", alert)
}

func writeYAML(path string, v any) {
	GinkgoHelper()
	raw, err := yaml.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(path, raw, 0o600)).To(Succeed())
}

// freeLoopbackAddress is 127.0.0.1 with a port free a moment ago.
func freeLoopbackAddress() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().String()
}

// stop ends Prometheus and logs its output.
func (p *prometheusServer) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	fmt.Fprintf(GinkgoWriter, "prometheus output (last 4 KiB):\n%s\n", lastBytes(p.output.String(), 4096))
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// promSample is one series of an instant query's result.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// api GETs /api/v1/<path> and decodes its data into out; a non-success status is an error.
func (p *prometheusServer) api(path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/"+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("decode /api/v1/%s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("/api/v1/%s %v: %s", path, params, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// query runs an instant query that must return a vector.
func (p *prometheusServer) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, data.ResultType)
	}
	samples := make([]promSample, 0, len(data.Result))
	for _, r := range data.Result {
		text, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, r.Value[1], err)
		}
		samples = append(samples, promSample{Metric: r.Metric, Value: v})
	}
	return samples, nil
}

// labelValues are the values of label among the series matching selector.
func (p *prometheusServer) labelValues(label, selector string) ([]string, error) {
	var values []string
	err := p.api("label/"+label+"/values", url.Values{"match[]": {selector}}, &values)
	return values, err
}

// promAlert is an alert of /api/v1/alerts.
type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts are the pending and firing alerts.
func (p *prometheusServer) alerts() ([]promAlert, error) {
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	err := p.api("alerts", nil, &data)
	return data.Alerts, err
}

// alertState is the state ("pending", "firing") of alert for the given labels, "" when it is
// not active.
func (p *prometheusServer) alertState(alert string, labels map[string]string) (string, error) {
	active, err := p.alerts()
	if err != nil {
		return "", err
	}
	for _, a := range active {
		if a.Labels["alertname"] != alert {
			continue
		}
		matches := true
		for k, v := range labels {
			matches = matches && a.Labels[k] == v
		}
		if matches {
			return a.State, nil
		}
	}
	return "", nil
}

// promTarget is an active scrape target.
type promTarget struct {
	ScrapePool string            `json:"scrapePool"`
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
}

func (p *prometheusServer) targets() ([]promTarget, error) {
	var data struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	err := p.api("targets", url.Values{"state": {"active"}}, &data)
	return data.ActiveTargets, err
}
