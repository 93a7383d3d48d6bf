package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestTailReconnectsWithLastEventID: the stream ends after two events with a retry hint; tail
// reconnects with Last-Event-ID, prints the gap notice and the next event, and stops on 204.
func TestTailReconnectsWithLastEventID(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Header.Get("Last-Event-ID")+"|"+r.Header.Get("Authorization"))
		n := len(requests)
		mu.Unlock()
		switch n {
		case 1:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ": ok\n\nretry: 10\n\nid: 1\ndata: one\n\nid: 2\ndata: two\ndata: lines\n\n")
		case 2:
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			fmt.Fprint(w, "event: gap\ndata: {\"reason\":\"expired\"}\n\nid: 3\ndata: three\n\n")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()

	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "EVENTCTL_TOKEN" {
			return "tok"
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := runTail(ctx, []string{"--retry=5s", srv.URL}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want := "1\tone\n2\ttwo\n\tlines\nGAP {\"reason\":\"expired\"} (events were missed: refetch from the source of truth)\n3\tthree\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Join(requests, ",") != "|Bearer tok,2|Bearer tok,3|Bearer tok" {
		t.Fatalf("requests (Last-Event-ID|Authorization): %v", requests)
	}
}

func TestTailStopsOnFinalStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "token expired", http.StatusUnauthorized)
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	err := runTail(context.Background(), []string{srv.URL}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "token expired") {
		t.Fatalf("err = %v", err)
	}
}

// TestPublishCountAndStdin publishes to a real broker and checks what arrives: the routing
// key from the template, the JSON contract, persistent messages.
func TestPublishCountAndStdin(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	exchange, queue := "eventctl-x-"+events.NewID()[:8], "eventctl-q-"+events.NewID()[:8]
	conn, err := amqp.Dial(node.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, true, true, false, nil); err != nil { // exclusive: gone with the connection
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "team.*.job.*.status", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "RABBITMQ_URL" {
			return node.URI
		}
		return ""
	}
	var out bytes.Buffer
	ctx := context.Background()
	if err := runPublish(ctx, []string{"--exchange", exchange, "--team", "42", "--job", "7", "--count", "300", "--rate", "0"}, getenv, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	stdin := strings.NewReader(`{"type":"job.status","team_id":"43","job_id":"1","status":"done","progress":100}` + "\n\n" +
		`{"id":"x","type":"job.status","team_id":"43","job_id":"2","status":"failed","progress":10,"message":"a\nb"}` + "\n")
	if err := runPublish(ctx, []string{"--exchange", exchange, "--stdin"}, getenv, stdin, &out, &out); err != nil {
		t.Fatal(err)
	}
	if err := runPublish(ctx, []string{"--exchange", exchange, "--team", "4.2", "--job", "7"}, getenv, nil, &out, &out); err == nil {
		t.Fatal("a team with '.' was published")
	}
	if !strings.Contains(out.String(), "published 300 events") || !strings.Contains(out.String(), "published 2 events") {
		t.Fatalf("output: %s", out.String())
	}
	keys := map[string]int{}
	for i := 0; i < 302; i++ {
		d, ok, err := ch.Get(queue, true)
		if err != nil || !ok {
			t.Fatalf("message %d: ok=%v err=%v", i, ok, err)
		}
		var ev events.Event
		if err := json.Unmarshal(d.Body, &ev); err != nil || ev.Validate() != nil || d.DeliveryMode != amqp.Persistent {
			t.Fatalf("message %d: %s (%v)", i, d.Body, err)
		}
		keys[d.RoutingKey]++
	}
	if keys["team.42.job.7.status"] != 300 || keys["team.43.job.1.status"] != 1 || keys["team.43.job.2.status"] != 1 {
		t.Fatalf("routing keys %v", keys)
	}
}
