package apps

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
	"github.com/eventstream-operator/eventstream-operator/test/apptest"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// pyAMQPPublish publishes one message with py-amqp (the library under Celery and kombu) with
// a header holding an integer beyond 32 bits, which py-amqp writes with field type L.
const pyAMQPPublish = `
import os, sys, urllib.parse, amqp
u = urllib.parse.urlparse(os.environ["RABBITMQ_URL"])
with amqp.Connection(host=f"{u.hostname}:{u.port}", userid=u.username, password=u.password,
                     virtual_host=urllib.parse.unquote(u.path[1:]) or "/") as conn:
    ch = conn.channel()
    ch.basic_publish(amqp.Message(sys.argv[2], content_type="application/json",
                                  application_headers={"timestamp_in_ms": 2**40}),
                     exchange=os.environ["RABBITMQ_EVENTS_EXCHANGE"], routing_key=sys.argv[1])
`

// TestBridgeConsumesIntegerHeadersOfPyAMQP: a message published by py-amqp with a large
// integer header reaches the bridge's client. amqp091-go v1.16.0 closed the connection on the
// header's field type (L): the bridge reconnected forever and the queue was blocked
// (third_party/README.md).
func TestBridgeConsumesIntegerHeadersOfPyAMQP(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	queue, exchange := "apps-hq-"+events.NewID()[:8], "apps-hx-"+events.NewID()[:8]
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	env := apptest.PythonEnv(t, node.URI, exchange)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bench.StartBridge(ctx, bench.BridgeOptions{
		Binary: bridgeBinary(t), AMQPURL: node.URI, Exchange: exchange, Queue: queue,
		JWTSecret: jwtSecret, Log: apptest.ProcessLog(t, "bridge"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)

	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "header-test", "teams": []string{"42"}, "scope": "events:read",
		"exp": time.Now().Add(time.Minute).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	streamURL := "http://" + b.Addr + "/api/v1/events?team_id=42&access_token=" + url.QueryEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream answered %s", resp.Status)
	}

	id := events.NewID()
	body := `{"id":"` + id + `","team_id":"42","job_id":"7","status":"running","progress":50,"type":"job.status","time":"2026-12-02T00:00:00Z"}`
	if out, err := apptest.PythonCommand(env, "-c", pyAMQPPublish, "team.42.job.7.status", body).CombinedOutput(); err != nil {
		t.Fatalf("py-amqp publish: %v\n%s", err, out)
	}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data:") && strings.Contains(lines.Text(), id) {
			return
		}
	}
	reconnects, _ := b.Metrics()
	t.Fatalf("the event published by py-amqp never reached the client (%v); bridge metrics: reconnects %v",
		lines.Err(), reconnects[metrics.BrokerReconnects])
}
