package chaos

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Row is one deployment's figures in one scenario.
type Row struct {
	Scenario, Deployment string
	// Published counts publish attempts, Confirmed those the broker confirmed.
	Published, Confirmed int
	Counts
}

// Check is one measured target: OK false fails the suite. A Check without Target is a figure
// reported for information.
type Check struct {
	Scenario, Deployment string
	What, Target         string
	Measured             string
	OK                   bool
}

// Report collects the figures of a run and renders them as text tables (test log) and as the
// markdown that docs/reliability.md quotes.
type Report struct {
	Profile string
	Started time.Time

	mu     sync.Mutex
	rows   []Row
	checks []Check
}

// AddRow records a deployment's figures.
func (r *Report) AddRow(row Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row)
}

// AddCheck records a measured target or figure.
func (r *Report) AddCheck(c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, c)
}

// Failed returns the checks that missed their target.
func (r *Report) Failed() []Check {
	r.mu.Lock()
	defer r.mu.Unlock()
	var failed []Check
	for _, c := range r.checks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	return failed
}

var figureHeader = []string{"scenario", "deployment", "clients", "published / confirmed", "owed", "delivered",
	"lost silently", "lost, gap sent", "superseded", "duplicated", "reordered", "gaps (without loss)", "resumes"}

func (row Row) cells() []string {
	return []string{row.Scenario, row.Deployment, fmt.Sprint(row.Clients),
		fmt.Sprintf("%d / %d", row.Published, row.Confirmed), fmt.Sprint(row.Expected), fmt.Sprint(row.Delivered),
		fmt.Sprint(row.LostSilent), fmt.Sprint(row.LostSignalled), fmt.Sprint(row.Superseded),
		fmt.Sprint(row.Duplicated), fmt.Sprint(row.Reordered),
		fmt.Sprintf("%d (%d)", row.Gaps, row.GapsWithoutLoss), fmt.Sprint(row.Resumes)}
}

var checkHeader = []string{"scenario", "deployment", "measure", "target", "measured", "result"}

func (c Check) cells() []string {
	target, result := c.Target, "ok"
	if target == "" {
		target, result = "—", "figure"
	} else if !c.OK {
		result = "**MISSED**"
	}
	return []string{c.Scenario, c.Deployment, c.What, target, c.Measured, result}
}

// Markdown renders both tables.
func (r *Report) Markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "Chaos suite, profile `%s`, %s; the scenarios ran for %s.\n\n", r.Profile, r.Started.UTC().Format("2006-01-02 15:04 MST"),
		time.Since(r.Started).Round(time.Second))
	b.WriteString("Deliveries (summed over clients; an event is owed to a client when its publish was confirmed and it matches the client's filter):\n\n")
	rows := make([][]string, len(r.rows))
	for i, row := range r.rows {
		rows[i] = row.cells()
	}
	writeMarkdownTable(&b, figureHeader, rows)
	b.WriteString("\nRecovery and targets:\n\n")
	rows = make([][]string, len(r.checks))
	for i, c := range r.checks {
		rows[i] = c.cells()
	}
	writeMarkdownTable(&b, checkHeader, rows)
	return b.String()
}

func writeMarkdownTable(w io.Writer, header []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)))
	for _, row := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// ScenarioText renders one scenario's rows and checks as aligned text for the test log.
func (r *Report) ScenarioText(scenario string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	var rows [][]string
	for _, row := range r.rows {
		if row.Scenario == scenario {
			rows = append(rows, row.cells()[1:])
		}
	}
	writeAligned(&b, figureHeader[1:], rows)
	rows = nil
	for _, c := range r.checks {
		if c.Scenario == scenario {
			rows = append(rows, c.cells()[1:])
		}
	}
	writeAligned(&b, checkHeader[1:], rows)
	return b.String()
}

func writeAligned(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	line := func(cells []string) {
		for i, cell := range cells {
			fmt.Fprintf(w, "%-*s  ", widths[i], cell)
		}
		fmt.Fprintln(w)
	}
	line(header)
	for _, row := range rows {
		line(row)
	}
}
