package events

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		in           string
		placeholders []string
		binding      string
		wantErr      string
	}{
		{in: "team.{team_id}.job.{job_id}.status", placeholders: []string{"team_id", "job_id"}, binding: "team.*.job.*.status"},
		{in: "{a}", placeholders: []string{"a"}, binding: "*"},
		{in: "plain.key", placeholders: nil, binding: "plain.key"},
		{in: "x.{a1_b}.y", placeholders: []string{"a1_b"}, binding: "x.*.y"},
		{in: "", wantErr: "empty"},
		{in: "a..b", wantErr: "segment 2 is empty"},
		{in: ".a", wantErr: "segment 1 is empty"},
		{in: "a.", wantErr: "segment 2 is empty"},
		{in: "a.job-{id}", wantErr: "whole segment"},
		{in: "a.{id}x", wantErr: "whole segment"},
		{in: "a.{id}.{id}", wantErr: "appears twice"},
		{in: "a.*.b", wantErr: "wildcards"},
		{in: "a.#", wantErr: "wildcards"},
		{in: "a.{Team}", wantErr: "[a-z]"},
		{in: "a.{1x}", wantErr: "[a-z]"},
		{in: "a.{}", wantErr: "[a-z]"},
		{in: "a.{a-b}", wantErr: "[a-z]"},
		{in: strings.Repeat("a", 256), wantErr: "more than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tmpl, err := ParseTemplate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTemplate(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tt.in, err)
			}
			if got := tmpl.Placeholders(); !slices.Equal(got, tt.placeholders) {
				t.Errorf("Placeholders() = %q, want %q", got, tt.placeholders)
			}
			if got := tmpl.BindingKey(); got != tt.binding {
				t.Errorf("BindingKey() = %q, want %q", got, tt.binding)
			}
			if tmpl.String() != tt.in {
				t.Errorf("String() = %q, want %q", tmpl.String(), tt.in)
			}
			if err := ValidBindingKey(tmpl.BindingKey()); err != nil {
				t.Errorf("BindingKey() is not a valid binding key: %v", err)
			}
		})
	}
}

func TestTemplateMatch(t *testing.T) {
	tmpl := MustParseTemplate(DefaultRoutingKeyTemplate)
	tests := []struct {
		key    string
		values []string
	}{
		{"team.42.job.7.status", []string{"42", "7"}},
		{"team.a_b-c.job.x.status", []string{"a_b-c", "x"}},
		{"team..job.7.status", nil},
		{"team.42.job..status", nil},
		{"team.42.job.7.status.extra", nil},
		{"team.42.job.7", nil},
		{"team.42.job.7.statu", nil},
		{"xteam.42.job.7.status", nil},
		{"team.4.2.job.7.status", nil},
		{"", nil},
		{"team.42.job.7.status.", nil},
	}
	for _, tt := range tests {
		got, ok := tmpl.Match(tt.key)
		if ok != (tt.values != nil) || !slices.Equal(got, tt.values) {
			t.Errorf("Match(%q) = %q, %v; want %q", tt.key, got, ok, tt.values)
		}
	}
	// The last segment being a placeholder must not swallow dots.
	tail := MustParseTemplate("a.{x}")
	if v, ok := tail.Match("a.b.c"); ok {
		t.Errorf("a.{x} matched a.b.c with %q", v)
	}
	if v, ok := tail.Match("a.b"); !ok || v[0] != "b" {
		t.Errorf("a.{x} Match(a.b) = %q, %v", v, ok)
	}
}

func TestTemplateRender(t *testing.T) {
	tmpl := MustParseTemplate(DefaultRoutingKeyTemplate)
	key, err := tmpl.Render(map[string]string{"team_id": "42", "job_id": "7"})
	if err != nil || key != "team.42.job.7.status" {
		t.Fatalf("Render = %q, %v", key, err)
	}
	for name, values := range map[string]map[string]string{
		"missing value": {"team_id": "42"},
		"empty value":   {"team_id": "42", "job_id": ""},
		"dot in value":  {"team_id": "4.2", "job_id": "7"},
		"wildcard":      {"team_id": "*", "job_id": "7"},
		"unknown name":  {"team_id": "42", "job_id": "7", "tenant": "x"},
		"too long":      {"team_id": strings.Repeat("x", 250), "job_id": "7"},
	} {
		if key, err := tmpl.Render(values); err == nil {
			t.Errorf("%s: Render = %q, want error", name, key)
		}
	}
}

func TestValidBindingKey(t *testing.T) {
	for _, ok := range []string{"#", "*", "team.*.job.*.status", "team.#", "a.b"} {
		if err := ValidBindingKey(ok); err != nil {
			t.Errorf("ValidBindingKey(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "a*.b", "a.b#", "team.{x}.*x"} {
		if err := ValidBindingKey(bad); err == nil {
			t.Errorf("ValidBindingKey(%q) = nil, want error", bad)
		}
	}
}

func TestEventRoutingKeyAndValidate(t *testing.T) {
	tmpl := MustParseTemplate(DefaultRoutingKeyTemplate)
	ev := Event{ID: "e1", Type: "job.status", TeamID: "42", JobID: "7", Status: "running", Progress: 50, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if key, err := ev.RoutingKey(tmpl); err != nil || key != "team.42.job.7.status" {
		t.Fatalf("RoutingKey = %q, %v", key, err)
	}
	bad := ev
	bad.Progress, bad.TeamID = 101, "4.2"
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "progress") || !strings.Contains(err.Error(), "team_id") {
		t.Fatalf("Validate = %v, want progress and team_id errors", err)
	}
	if _, err := ev.RoutingKey(MustParseTemplate("x.{region}")); err == nil {
		t.Fatal("RoutingKey with a placeholder that is not an event field: want error")
	}
}

// FuzzTemplateMatch checks that Match never panics and agrees with Render: whatever Match
// accepts renders back to the same key.
func FuzzTemplateMatch(f *testing.F) {
	f.Add(DefaultRoutingKeyTemplate, "team.42.job.7.status")
	f.Add("{a}.{b}", "x.y")
	f.Add("a.{x}", "a.b.c")
	f.Add("a.b", "a.b")
	f.Add("{a}", "")
	f.Fuzz(func(t *testing.T, template, key string) {
		tmpl, err := ParseTemplate(template)
		if err != nil {
			return
		}
		values, ok := tmpl.Match(key)
		if !ok {
			return
		}
		m := map[string]string{}
		for i, name := range tmpl.Placeholders() {
			if values[i] == "" || strings.Contains(values[i], ".") {
				t.Fatalf("Match(%q) gave value %q for {%s}", key, values[i], name)
			}
			m[name] = values[i]
		}
		rendered, err := tmpl.Render(m)
		if err != nil {
			// Values with wildcards match (a routing key may contain '*') but do not render.
			if strings.ContainsAny(key, "*#") {
				return
			}
			t.Fatalf("Render of matched values %q: %v", values, err)
		}
		if rendered != key {
			t.Fatalf("Render(Match(%q)) = %q", key, rendered)
		}
	})
}
