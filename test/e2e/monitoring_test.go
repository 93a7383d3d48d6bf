//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// screenshotDirEnv names the directory the suite saves its screenshot of Prometheus's graph
// page to (EVENTSTREAM_SCREENSHOT_DIR=docs/images refreshes the one in docs/operator.md);
// by default test/e2e/artifacts, which git ignores.
const screenshotDirEnv = "EVENTSTREAM_SCREENSHOT_DIR"

// dashboardFile is the Grafana dashboard the chart ships.
var dashboardFile = filepath.Join(chartDir, "files", "monitoring", "dashboard.json")

// dashboardQuery is one query of the dashboard: a panel's target or a variable's
// label_values(selector, label).
type dashboardQuery struct {
	Where string
	Expr  string
	// Label is set for a variable: the query lists the values of Label among the series of
	// Expr.
	Label string
}

// dashboardQueries reads every query of the chart's dashboard.
func dashboardQueries() []dashboardQuery {
	GinkgoHelper()
	raw, err := os.ReadFile(filepath.Join(kubetest.ProjectRoot(), dashboardFile))
	Expect(err).NotTo(HaveOccurred())
	var d struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	Expect(json.Unmarshal(raw, &d)).To(Succeed())
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	var queries []dashboardQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		Expect(m).NotTo(BeNil(), "variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
		queries = append(queries, dashboardQuery{Where: "variable " + v.Name, Expr: m[1], Label: m[2]})
	}
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			queries = append(queries, dashboardQuery{Where: "panel " + p.Title, Expr: t.Expr})
		}
	}
	Expect(len(queries)).To(BeNumerically(">=", 10))
	return queries
}

// grafanaVariables gives the dashboard's variables the values a user looking at one stream
// picks; $__rate_interval is what Grafana computes for a short range with this scrape interval.
func grafanaVariables(namespace, stream string) *strings.Replacer {
	return strings.NewReplacer("$__rate_interval", "30s", "$namespace", regexp.QuoteMeta(namespace), "$stream", regexp.QuoteMeta(stream))
}

// expectDashboardData asserts that every query of the dashboard returns data for stream in
// namespace: at least one series for a panel's query, the stream's namespace and name among a
// variable's values.
func expectDashboardData(prom *prometheusServer, namespace, stream string) {
	GinkgoHelper()
	vars := grafanaVariables(namespace, stream)
	for _, q := range dashboardQueries() {
		expr := vars.Replace(q.Expr)
		if q.Label != "" {
			want := map[string]string{"namespace": namespace, "name": stream}[q.Label]
			Expect(want).NotTo(BeEmpty(), "%s lists label %s", q.Where, q.Label)
			Eventually(func() ([]string, error) { return prom.labelValues(q.Label, expr) }).
				Should(ContainElement(want), "%s: label_values(%s, %s)", q.Where, expr, q.Label)
			continue
		}
		Eventually(func() ([]promSample, error) { return prom.query(expr) }).
			ShouldNot(BeEmpty(), "%s: %s returns no data", q.Where, expr)
	}
}

// streamGraphQueries are the dashboard's queries of the stream's clients and deliveries/s, as
// the panels SSE clients and Deliveries/s hold them.
func streamGraphQueries(namespace, stream string) (clients, deliveries string) {
	GinkgoHelper()
	vars := grafanaVariables(namespace, stream)
	for _, q := range dashboardQueries() {
		switch {
		case strings.HasPrefix(q.Expr, "sum by (namespace, pod) (eventstream_bridge_clients{"):
			clients = vars.Replace(q.Expr)
		case strings.Contains(q.Expr, "rate(eventstream_bridge_events_delivered_total{"):
			deliveries = strings.ReplaceAll(vars.Replace(q.Expr), "[30s]", "[1m]")
		}
	}
	Expect(clients).NotTo(BeEmpty(), "the dashboard's clients query")
	Expect(deliveries).NotTo(BeEmpty(), "the dashboard's deliveries/s query")
	return clients, deliveries
}

// screenshotGraphPage opens Prometheus's own graph page with the queries, one graph each over
// the last rangeInput, waits until every graph is drawn with a legend naming the series, and
// saves a PNG of the page as name in $EVENTSTREAM_SCREENSHOT_DIR (default
// test/e2e/artifacts). It returns the file's path.
func screenshotGraphPage(b *browser, prom *prometheusServer, name, rangeInput string, queries ...string) string {
	GinkgoHelper()
	params := url.Values{}
	for i, q := range queries {
		params.Set(fmt.Sprintf("g%d.expr", i), q)
		params.Set(fmt.Sprintf("g%d.tab", i), "0") // the Graph tab
		params.Set(fmt.Sprintf("g%d.range_input", i), rangeInput)
	}
	page := prom.URL + "/graph?" + params.Encode()
	ctx, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()
	// Tall enough for both graphs without scrolling: Prometheus's navigation bar is fixed.
	Expect(chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1650), chromedp.Navigate(page))).To(Succeed())
	drawn := fmt.Sprintf(`(() => {
  const graphs = [...document.querySelectorAll('.graph_wrapper')];
  return graphs.length === %d && graphs.every(g =>
    g.querySelector('.graph_area svg path') !== null &&
    (g.querySelector('.legend') || {textContent: ''}).textContent.includes('pod='));
})()`, len(queries))
	ok, err := chromedp.Run(ctx, chromedp.Poll[bool](drawn, chromedp.WithPollingTimeout(time.Minute)))
	Expect(err).NotTo(HaveOccurred(), "Prometheus's graph page %s did not draw its graphs", page)
	Expect(ok).To(BeTrue())
	// The page focuses the last expression field; unfocused, nothing is highlighted.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement.blur(); window.scrollTo(0, 0); true`))
	Expect(err).NotTo(HaveOccurred())
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	Expect(err).NotTo(HaveOccurred())
	Expect(string(png[:8])).To(Equal("\x89PNG\r\n\x1a\n"))

	dir := os.Getenv(screenshotDirEnv)
	if dir == "" {
		dir = filepath.Join("test", "e2e", "artifacts")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(kubetest.ProjectRoot(), dir)
	}
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	path := filepath.Join(dir, name)
	Expect(os.WriteFile(path, png, 0o644)).To(Succeed())
	fmt.Fprintf(GinkgoWriter, "screenshot of %s saved to %s (%d bytes)\n", page, path, len(png))
	return path
}
