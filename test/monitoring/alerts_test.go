// Package monitoring tests what the chart ships for Prometheus: the alert rules, with the real
// promtool (Debian's prometheus package), and that every metric they query is one the bridge
// or the operator exposes.
package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/controllers"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

var alertsFile = filepath.Join(kubetest.ProjectRoot(), "charts", "eventstream-operator", "files", "monitoring", "alerts.yaml")

func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		kubetest.Missing(t, "promtool not found: run make test (it installs Debian's prometheus package)")
	}
	return path
}

// TestAlertRules checks the rules and runs alerts_test.yaml: each alert fires on a series that
// should fire it and stays quiet on one that should not.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", "alerts_test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

var metricName = regexp.MustCompile(`\beventstream_[a-z_]+\b`)

// TestAlertsQueryExposedMetrics fails when an alert queries a metric that neither binary
// exposes (a renamed metric would silence the alert forever), and when an alert lacks its
// summary, description or runbook.
func TestAlertsQueryExposedMetrics(t *testing.T) {
	exposed := exposedMetricNames(t)
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleFile
	if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			for _, name := range metricName.FindAllString(r.Expr, -1) {
				if !slices.Contains(exposed, name) {
					t.Errorf("%s queries %s, which no binary exposes (exposed: %v)", r.Alert, name, exposed)
				}
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[key] == "" {
					t.Errorf("%s has no %s", r.Alert, key)
				}
			}
		}
	}
	if alerts < 7 {
		t.Errorf("%d alerts, want the 7 of issue 11", alerts)
	}
}

// exposedMetricNames are the series names the bridge and the operator expose: the bridge's
// registry as the bridge builds it, and the operator's metric names, exported by controllers
// (a histogram's as its _bucket, _sum and _count series).
func exposedMetricNames(t *testing.T) []string {
	t.Helper()
	names := bridgeMetricNames(t)
	names = append(names, controllers.MetricStreamCondition, controllers.MetricStreamDeadLettered,
		controllers.MetricStreamQueueReady, controllers.MetricReconcileErrors, controllers.MetricBrokerRequests)
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		names = append(names, controllers.MetricBrokerRequestDuration+suffix)
	}
	return names
}

// bridgeMetricNames gathers the bridge's registry as the bridge builds it.
func bridgeMetricNames(t *testing.T) []string {
	t.Helper()
	m := metrics.New()
	if _, err := auth.NewMetrics(m.Registry); err != nil {
		t.Fatal(err)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names = append(names, f.GetName()+suffix)
			}
		}
	}
	return names
}
