package app

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	bridgeamqp "github.com/eventstream-operator/eventstream-operator/bridge/amqp"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/test/bench"
	"github.com/eventstream-operator/eventstream-operator/test/clitest"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// snapshotOf opens url with snapshot=1 and returns the snapshot ("routing key data" lines in
// the order received) and the snapshot-end event.
func snapshotOf(t *testing.T, url string) (lines []string, end sse.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s answered %d", url, resp.StatusCode)
	}
	dec := sse.NewDecoder(resp.Body, 0)
	for {
		m, err := dec.Next()
		if err != nil {
			t.Fatalf("read snapshot: %v", err)
		}
		switch m.Name {
		case "snapshot":
			lines = append(lines, m.Data)
		case "snapshot-end":
			return lines, m
		default:
			t.Fatalf("%s event before snapshot-end", m.Name)
		}
	}
}

// TestStreamSnapshotIsTheSameOnEveryReplicaAndSurvivesARestart runs two real bridge processes
// on one stream queue with snapshots on. Both serve the same snapshot of team 42's 200 jobs
// (none of team 43), complete; one is killed (SIGKILL), events go on, it starts again and
// rebuilds its store from the stream: its snapshot equals the other's, with the newest
// versions published while it was down.
func TestStreamSnapshotIsTheSameOnEveryReplicaAndSurvivesARestart(t *testing.T) {
	const jobs = 200
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	secret := "a-test-secret-of-at-least-32-bytes-long"
	token := bench.HS256Token([]byte(secret), []string{"42"}, time.Hour)
	binary := bridgeBinary(t)
	ports := make([][2]string, 2)
	for i := range ports {
		for j := range ports[i] {
			p, err := bench.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports[i][j] = fmt.Sprintf("127.0.0.1:%d", p)
		}
	}
	logs := make([]clitest.Output, 2)
	start := func(i int) *bench.BridgeProcess {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		b, err := bench.StartBridge(ctx, bench.BridgeOptions{
			Binary: binary, AMQPURL: node.URI, Exchange: exchange, Queue: queue, JWTSecret: secret,
			Addr: ports[i][0], OpsAddr: ports[i][1], Log: &logs[i],
			Extra: []string{"--queue-type=stream", "--snapshot-max-keys=1000", "--replay-size=10"},
		})
		if err != nil {
			t.Fatalf("bridge %d: %v\n%s", i, err, logs[i].String())
		}
		t.Cleanup(b.Stop)
		return b
	}
	p := publisher(t, node.URI, exchange)
	publishVersions := func(from, to int) {
		for v := from; v <= to; v++ {
			for j := 0; j < jobs; j++ {
				publishRaw(t, p, fmt.Sprintf("team.42.job.%d.status", j), []byte(fmt.Sprintf(`{"job":%d,"version":%d}`, j, v)))
				if j%20 == 0 {
					publishRaw(t, p, fmt.Sprintf("team.43.job.%d.status", j), []byte(fmt.Sprintf(`{"job":%d,"version":%d,"team":43}`, j, v)))
				}
			}
		}
	}
	// The stream queue exists once a bridge declared it; publish before the second starts, so it
	// builds its store from history.
	bridges := []*bench.BridgeProcess{start(0), nil}
	publishVersions(1, 3)
	bridges[1] = start(1)
	want := func(version int) []string {
		var lines []string
		for j := 0; j < jobs; j++ {
			lines = append(lines, fmt.Sprintf(`{"job":%d,"version":%d}`, j, version))
		}
		slices.SortFunc(lines, func(a, b string) int { // routing-key order: by the job's decimal digits
			return strings.Compare(fmt.Sprintf("team.42.job.%s.status", jobOf(a)), fmt.Sprintf("team.42.job.%s.status", jobOf(b)))
		})
		return lines
	}
	url := func(b *bench.BridgeProcess) string {
		return "http://" + b.Addr + b.Path + "?snapshot=1&access_token=" + token
	}
	expect := func(stage string, version int) {
		t.Helper()
		for i, b := range bridges {
			var lines []string
			var end sse.Message
			deadline := time.Now().Add(30 * time.Second)
			for {
				lines, end = snapshotOf(t, url(b))
				if slices.Equal(lines, want(version)) && end.Data == `{"keys":200,"partial":false}` {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: bridge %d's snapshot: %d keys, end %s; want 200 at version %d; first %q",
						stage, i, len(lines), end.Data, version, lines[:min(3, len(lines))])
				}
				time.Sleep(100 * time.Millisecond) // poll; bounded by the deadline
			}
			if end.LastEventID == "" {
				t.Errorf("%s: bridge %d's snapshot-end has no id", stage, i)
			}
		}
	}
	expect("two replicas", 3)

	bridges[1].Kill()
	publishVersions(4, 5)
	bridges[1] = start(1)
	expect("one replica restarted", 5)
}

// jobOf returns the job number of a test body {"job":N,…}.
func jobOf(body string) string {
	s := strings.TrimPrefix(body, `{"job":`)
	return s[:strings.IndexByte(s, ',')]
}

// When the snapshot is partial: a stream replica until it read its history; a classic or
// quorum bridge for max age after its start (forever without an age bound).
func TestSnapshotPartial(t *testing.T) {
	started := time.Now()
	read := false
	stream := snapshotPartial(bridgeamqp.Stream, time.Hour, started, func() bool { return read })
	if !stream() {
		t.Error("stream replica before reading its history: not partial")
	}
	read = true
	if stream() {
		t.Error("stream replica after reading its history: partial")
	}
	if !snapshotPartial(bridgeamqp.Classic, time.Hour, started, nil)() {
		t.Error("classic, just started: not partial")
	}
	if snapshotPartial(bridgeamqp.Quorum, time.Hour, started.Add(-61*time.Minute), nil)() {
		t.Error("quorum, started 61 minutes ago with max age 1h: partial")
	}
	if !snapshotPartial(bridgeamqp.Classic, 0, started.Add(-1000*time.Hour), nil)() {
		t.Error("classic without an age bound: not partial")
	}
}

// TestClassicSnapshotIsPartialAfterAStart: on a classic queue the store lives in the bridge
// process. A bridge's snapshot says partial for --snapshot-max-age after it started, then not;
// a restarted bridge's snapshot holds only what it consumed itself (the backlog that waited in
// the queue) and says partial again.
func TestClassicSnapshotIsPartialAfterAStart(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--snapshot-max-keys=100", "--snapshot-max-age=2s"}
	first := startBridge(t, node.URI, args...)
	p := publisher(t, node.URI, exchange)
	url := func(b *Bridge) string { return "http://" + b.SSEAddr() + "/api/v1/events?snapshot=1&team_id=42" }

	publishRaw(t, p, "team.42.job.1.status", []byte(`{"job":1}`))
	var (
		lines []string
		end   sse.Message
	)
	poll.Until(t, 10*time.Second, "job 1 in a partial snapshot", func() bool {
		lines, end = snapshotOf(t, url(first))
		return len(lines) == 1 && end.Data == `{"keys":1,"partial":true}`
	})
	// Two seconds after the start every key the previous process could have served has aged
	// out: the snapshot is complete.
	poll.Until(t, 10*time.Second, "a complete snapshot of a fresh job 2", func() bool {
		publishRaw(t, p, "team.42.job.2.status", []byte(`{"job":2}`))
		lines, end = snapshotOf(t, url(first))
		return slices.Contains(lines, `{"job":2}`) && strings.HasSuffix(end.Data, `"partial":false}`)
	})

	shutdown(t, first)
	publishRaw(t, p, "team.42.job.3.status", []byte(`{"job":3}`)) // waits in the queue
	second := startBridge(t, node.URI, args...)
	poll.Until(t, 10*time.Second, "the restarted bridge's snapshot", func() bool {
		lines, end = snapshotOf(t, url(second))
		return slices.Equal(lines, []string{`{"job":3}`})
	})
	if end.Data != `{"keys":1,"partial":true}` {
		t.Errorf("restarted bridge's snapshot-end %s, want partial", end.Data)
	}
}
