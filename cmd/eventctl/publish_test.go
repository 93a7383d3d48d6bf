package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestPublishUnroutableFails: an event the broker returns (no queue bound for its key) is
// retried and then reported as an error (exit status 1), for one event, a load run and stdin;
// before mandatory publishing eventctl printed "published" and the events were lost.
func TestPublishUnroutableFails(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	ch := rabbitmqtest.Channel(t, node.URI)
	exchange := "eventctl-unroutable-" + events.NewID()[:8]
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil { // no queue bound
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "RABBITMQ_URL" {
			return node.URI
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retry := []string{"--exchange", exchange, "--retry-attempts", "2", "--retry-backoff", "10ms"}
	for name, tc := range map[string]struct {
		args  []string
		stdin string
	}{
		"one":   {args: []string{"--team", "42", "--job", "7"}},
		"count": {args: []string{"--team", "42", "--job", "7", "--count", "20"}},
		"stdin": {args: []string{"--stdin"}, stdin: `{"type":"job.status","team_id":"43","job_id":"1","status":"done","progress":100}` + "\n"},
	} {
		var out bytes.Buffer
		err := runPublish(ctx, append(retry, tc.args...), getenv, strings.NewReader(tc.stdin), &out, &out)
		if !errors.Is(err, publish.ErrUnroutable) {
			t.Errorf("%s: err = %v, want ErrUnroutable", name, err)
		}
		if strings.Contains(out.String(), "published") {
			t.Errorf("%s: reported as published: %s", name, out.String())
		}
	}
	var out bytes.Buffer
	if err := runPublish(ctx, append(retry, "--retry-attempts", "0"), getenv, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "--retry-attempts 0") {
		t.Errorf("--retry-attempts 0: err = %v", err)
	}
}
