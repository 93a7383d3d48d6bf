package monitoring

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

var (
	chartDir      = filepath.Join(kubetest.ProjectRoot(), "charts", "eventstream-operator")
	dashboardFile = filepath.Join(chartDir, "files", "monitoring", "dashboard.json")
)

// datasourceRef is how every panel and query names its data source: the dashboard's
// ${datasource} variable, so that the dashboard imports into any Grafana.
type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int            `json:"id"`
		Type       string         `json:"type"`
		Title      string         `json:"title"`
		Datasource *datasourceRef `json:"datasource"`
		Targets    []struct {
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

var wantDatasource = datasourceRef{Type: "prometheus", UID: "${datasource}"}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// TestDashboardQueriesExposedMetrics fails when a panel or a variable queries a metric that
// neither binary exposes (a renamed metric would blank the panel), when a panel lacks a title
// or does not use the ${datasource} variable, and when one of the panels issue 11 asks for is
// missing (each named by the metric it must show).
func TestDashboardQueriesExposedMetrics(t *testing.T) {
	exposed := exposedMetricNames(t)
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q: both are needed", d.Title, d.UID)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d: want a current Grafana's (>= 39, Grafana 11)", d.SchemaVersion)
	}

	variables := map[string]string{}
	for _, v := range d.Templating.List {
		variables[v.Name] = v.Type
		var query string
		if err := json.Unmarshal(v.Query, &query); err != nil {
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("variable %s: query %s is neither a string nor {query}", v.Name, v.Query)
			}
			query = q.Query
		}
		if v.Name == "datasource" {
			if v.Type != "datasource" || query != "prometheus" {
				t.Errorf("variable datasource is %s %q, want a datasource variable of type prometheus", v.Type, query)
			}
			continue
		}
		if v.Datasource == nil || *v.Datasource != wantDatasource {
			t.Errorf("variable %s: datasource %v, want %v", v.Name, v.Datasource, wantDatasource)
		}
		checkExposed(t, "variable "+v.Name, query, exposed)
	}
	for _, name := range []string{"datasource", "namespace", "stream"} {
		if _, ok := variables[name]; !ok {
			t.Errorf("no variable %s (variables: %v)", name, variables)
		}
	}

	queried := map[string]bool{}
	for _, p := range d.Panels {
		if strings.TrimSpace(p.Title) == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || *p.Datasource != wantDatasource {
			t.Errorf("panel %q: datasource %v, want %v", p.Title, p.Datasource, wantDatasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || *q.Datasource != wantDatasource {
				t.Errorf("panel %q: a query's datasource is %v, want %v", p.Title, q.Datasource, wantDatasource)
			}
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			checkExposed(t, "panel "+p.Title, q.Expr, exposed)
			for _, name := range metricName.FindAllString(q.Expr, -1) {
				queried[name] = true
			}
		}
	}
	// The panels of issue 11 item 2, each by the metric it shows.
	for _, name := range []string{
		"eventstream_operator_stream_condition",                       // streams Ready
		"eventstream_bridge_clients",                                  // clients
		"eventstream_bridge_events_delivered_total",                   // deliveries/s
		"eventstream_bridge_events_dropped_total",                     // drops and gaps
		"eventstream_bridge_consumer_lag_messages",                    // lag
		"eventstream_operator_stream_dead_lettered_messages",          // DLQ depth
		"eventstream_bridge_broker_reconnects_total",                  // reconnects
		"eventstream_bridge_auth_total",                               // auth results
		"eventstream_operator_reconcile_errors_total",                 // reconcile errors
		"eventstream_operator_broker_request_duration_seconds_bucket", // broker-call latency
	} {
		if !queried[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
}

func checkExposed(t *testing.T, where, expr string, exposed []string) {
	t.Helper()
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: query %q names no eventstream metric", where, expr)
	}
	for _, name := range names {
		if !slices.Contains(exposed, name) {
			t.Errorf("%s queries %s, which no binary exposes (exposed: %v)", where, name, exposed)
		}
	}
}

// TestDashboardConfigMap renders the chart with the real helm: off by default; when enabled,
// a ConfigMap with the grafana_dashboard label, the extra labels and annotations, and the
// dashboard file verbatim.
func TestDashboardConfigMap(t *testing.T) {
	if cm := renderDashboardConfigMap(t); cm != nil {
		t.Fatalf("monitoring.dashboard.enabled defaults to false, yet ConfigMap %s is rendered", cm.Name)
	}
	cm := renderDashboardConfigMap(t, "monitoring.dashboard.enabled=true",
		"monitoring.dashboard.labels.team=platform", "monitoring.dashboard.annotations.grafana_folder=EventStream")
	if cm == nil {
		t.Fatal("monitoring.dashboard.enabled=true renders no dashboard ConfigMap")
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Labels["team"] != "platform" {
		t.Errorf("labels %v, want grafana_dashboard: \"1\" and team: platform", cm.Labels)
	}
	if cm.Annotations["grafana_folder"] != "EventStream" {
		t.Errorf("annotations %v, want grafana_folder: EventStream", cm.Annotations)
	}
	want, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 1 {
		t.Fatalf("ConfigMap data has keys %v, want one dashboard", keysOf(cm.Data))
	}
	for key, got := range cm.Data {
		if !strings.HasSuffix(key, ".json") {
			t.Errorf("data key %q: the sidecar wants a .json file", key)
		}
		if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
			t.Errorf("data %s differs from %s", key, dashboardFile)
		}
	}
}

// renderDashboardConfigMap runs helm template with sets and returns the ConfigMap carrying
// the grafana_dashboard label, nil when none is rendered.
func renderDashboardConfigMap(t *testing.T, sets ...string) *corev1.ConfigMap {
	t.Helper()
	args := []string{"template", "evs", chartDir, "--namespace", "evs-system"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(kubetest.Helm(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, stderr.String())
	}
	for _, doc := range strings.Split(out.String(), "\n---") {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal([]byte(doc), &cm); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if cm.Kind == "ConfigMap" && cm.Labels["grafana_dashboard"] != "" {
			return &cm
		}
	}
	return nil
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// grafanaVariables are the dashboard variables its queries use, with a value Grafana could
// give them: substituted, each query is plain PromQL.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "2m", "$namespace", ".*", "$stream", ".*")

// TestDashboardQueriesParse has the real promtool parse every panel's query (as recording
// rules, after substituting the dashboard's variables): a PromQL typo fails here, not in a
// user's Grafana.
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range readDashboard(t).Panels {
		for _, q := range p.Targets {
			rules = append(rules, rule{Record: "dashboard:query", Expr: grafanaVariables.Replace(q.Expr)})
		}
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
