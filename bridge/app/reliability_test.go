package app

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/publish"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestClassicBacklogReachesClientsOfThePreviousProcess (issue 14, item 2): bridge A consumes
// a classic queue and a client holds an id of A; A stops; events are published while no bridge
// runs; bridge B starts and consumes that backlog before the client is back. The client
// reconnecting with A's id gets a gap (what happened between A's last event and B's start
// cannot be placed) and then every event published while A was down: none missing.
func TestClassicBacklogReachesClientsOfThePreviousProcess(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange}
	a := startBridge(t, node.URI, args...)
	c := connect(t, a, "team_id=4", "")
	poll.Until(t, 5*time.Second, "subscriber on A", func() bool { return a.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "4", "1", 1, 5)
	lastOfA := c.take(5, 10*time.Second)[4].LastEventID
	c.close()
	shutdown(t, a)

	const downtime = 200
	publishEvents(t, p, "4", "1", 6, 5+downtime)
	publishEvents(t, p, "5", "1", 1, 20) // another tenant, interleaved
	b := startBridge(t, node.URI, args...)
	poll.Until(t, 10*time.Second, "B consumed the backlog", func() bool {
		return testutil.ToFloat64(b.Metrics.Consumed) == downtime+20 && queueMessages(t, node.URI, queue) == 0
	})

	back := connect(t, b, "team_id=4", lastOfA)
	first := back.take(1, 10*time.Second)[0]
	if first.Name != "gap" || !strings.Contains(first.Data, `"reason":"unknown_id"`) {
		t.Fatalf("first after a foreign id: %s %s, want a gap", first.Name, first.Data)
	}
	got := back.take(downtime, 10*time.Second)
	for i, m := range got {
		if m.Name != "message" || !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+6)) {
			t.Fatalf("backlog event %d: %s %s", i+6, m.Name, m.Data)
		}
		if cur := hub.ParseCursor(hub.EpochIDs, m.LastEventID); cur.Epoch != b.Hub.Epoch() {
			t.Fatalf("backlog event %d has id %q, not of B", i+6, m.LastEventID)
		}
	}
	publishEvents(t, p, "4", "1", 6+downtime, 6+downtime)
	if m := back.take(1, 10*time.Second)[0]; !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, 6+downtime)) {
		t.Fatalf("live after the backlog: %s", m.Data)
	}
	t.Logf("missing after the restart: 0 of %d; redelivered (possible duplicates) %v",
		downtime, testutil.ToFloat64(b.Metrics.Redelivered))
}

// TestStreamDeadLettersEachMalformedMessageOnce (issue 14, item 3): two stream replicas, each
// restarted once, 10 malformed messages among valid ones: exactly 10 copies in the DLQ, one
// per message, and the malformed counter summed over all replica processes is 10.
func TestStreamDeadLettersEachMalformedMessageOnce(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream", "--replay-size=100"}
	a := startBridge(t, node.URI, args...)
	b := startBridge(t, node.URI, args...)
	processes := []*Bridge{a, b}
	p := publisher(t, node.URI, exchange)
	malformed := func(from, to int) {
		for i := from; i <= to; i++ {
			publishRaw(t, p, "team.1.job.1.status", []byte(fmt.Sprintf("{broken %d", i)))
		}
	}
	restart := func(old *Bridge) *Bridge {
		shutdown(t, old)
		fresh := startBridge(t, node.URI, args...)
		poll.Until(t, 15*time.Second, "restarted replica ready", fresh.Ready)
		processes = append(processes, fresh)
		return fresh
	}

	publishEvents(t, p, "1", "1", 1, 1)
	malformed(1, 5)
	publishEvents(t, p, "1", "1", 2, 2)
	poll.Until(t, 15*time.Second, "5 in the DLQ", func() bool { return queueMessages(t, node.URI, queue+".dlq") >= 5 })
	a = restart(a)
	malformed(6, 9)
	b = restart(b)
	malformed(10, 10)
	publishEvents(t, p, "1", "1", 3, 3)

	// Both replicas' consumers are past every malformed message once e3 reached their clients;
	// the leader reads in offset order, so once copy 10 is there, it examined all before it.
	for i, r := range []*Bridge{a, b} {
		c := connect(t, r, "team_id=1", "")
		poll.Until(t, 5*time.Second, "subscriber", func() bool { return r.Hub.Len() >= 1 })
		marker := fmt.Sprintf(`"id":"e%d"`, 4+i)
		publishEvents(t, p, "1", "1", 4+i, 4+i)
		for m := c.take(1, 10*time.Second)[0]; !strings.Contains(m.Data, marker); m = c.take(1, 10*time.Second)[0] {
		}
		c.close()
	}
	poll.Until(t, 20*time.Second, "10 in the DLQ", func() bool { return queueMessages(t, node.URI, queue+".dlq") >= 10 })

	bodies := drainQueue(t, node.URI, queue+".dlq")
	slices.Sort(bodies)
	want := make([]string, 10)
	for i := range want {
		want[i] = fmt.Sprintf("{broken %d", i+1)
	}
	slices.Sort(want)
	if !slices.Equal(bodies, want) {
		t.Fatalf("DLQ holds %d copies %q, want each of the 10 malformed messages once", len(bodies), bodies)
	}
	counted := func() float64 {
		var sum float64
		for _, r := range processes {
			for _, reason := range []string{"not_json", "routing_key", "oversize"} {
				sum += testutil.ToFloat64(r.Metrics.Malformed.WithLabelValues(reason))
			}
		}
		return sum
	}
	// The leader counts a message after the transaction that dead-letters it committed, so the
	// last copy can be in the DLQ a moment before it is counted.
	poll.Within(context.Background(), 5*time.Second, 10*time.Millisecond, func() bool { return counted() >= 10 })
	if counted := counted(); counted != 10 {
		t.Errorf("malformed counted %v times over the replica processes, want 10", counted)
	}
}

// drainQueue takes every ready message of queue and returns their bodies.
func drainQueue(t *testing.T, uri, queue string) []string {
	t.Helper()
	ch := rabbitmqtest.Channel(t, uri)
	var bodies []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %q: %v", queue, err)
		}
		if !ok {
			return bodies
		}
		bodies = append(bodies, string(d.Body))
	}
}

// TestStreamResumeAcrossMalformedIsExact (issue 14, item 5): a malformed message right after a
// client's cursor is not a gap: the client resuming from before the replay window (its own
// stream reader) gets every later event, without an `expired` gap.
func TestStreamResumeAcrossMalformedIsExact(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream", "--replay-size=3")
	c := connect(t, b, "team_id=2", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "2", "1", 1, 2)
	cursor := c.take(2, 10*time.Second)[1].LastEventID
	c.close()
	publishRaw(t, p, "team.2.job.1.status", []byte("{broken"))
	publishEvents(t, p, "2", "1", 3, 10) // pushes the ring past the cursor
	poll.Until(t, 10*time.Second, "all consumed", func() bool { return testutil.ToFloat64(b.Metrics.Consumed) == 11 })
	if !b.Hub.NeedsStreamRead(hub.ParseCursor(hub.OffsetIDs, cursor)) {
		t.Fatal("cursor still inside the replay window; the test does not exercise the stream reader")
	}

	resumed := connect(t, b, "team_id=2", cursor)
	for i, m := range resumed.take(8, 10*time.Second) {
		if m.Name != "message" || !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+3)) {
			t.Fatalf("event %d after a malformed message: %s %s", i+3, m.Name, m.Data)
		}
	}
}

// TestStreamReplicaBeforeItsFirstMessageResumesExactly (issue 14, item 5): a client reaching
// a just-restarted stream replica before it read any message (here: no replay, so it waits for
// the next one) resumes exactly from the stream instead of getting a false `expired` gap.
func TestStreamReplicaBeforeItsFirstMessageResumesExactly(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream", "--replay-size=0"}
	first := startBridge(t, node.URI, args...)
	c := connect(t, first, "team_id=6", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return first.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "6", "1", 1, 3)
	cursor := c.take(3, 10*time.Second)[2].LastEventID
	shutdown(t, first)
	publishEvents(t, p, "6", "1", 4, 6) // while no replica runs

	second := startBridge(t, node.URI, args...)
	resumed := connect(t, second, "team_id=6", cursor)
	publishEvents(t, p, "6", "1", 7, 7) // the replica's first message
	for i, m := range resumed.take(4, 10*time.Second) {
		if m.Name != "message" || !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+4)) {
			t.Fatalf("event %d on the restarted replica: %s %s", i+4, m.Name, m.Data)
		}
	}
}

// TestDisconnectPolicyDoesNotCountResumableEventsAsDropped (issue 14, item 5): a slow client
// ended by the disconnect policy is counted as such; its buffered events are not counted as
// dropped, because it resumes them: reconnecting with an id before them, it gets every event.
func TestDisconnectPolicyDoesNotCountResumableEventsAsDropped(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--overflow=disconnect", "--buffer-size=4", "--replay-size=1000")

	stuck, err := net.Dial("tcp", b.SSEAddr()) // connected, never reads
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	_ = stuck.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stuck, "GET /api/v1/events?team_id=7 HTTP/1.1\r\nHost: x\r\n\r\n")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })

	p := publisher(t, node.URI, exchange)
	pad := strings.Repeat("y", 16<<10)
	const n = 300
	for i := 1; i <= n; i++ {
		publishRaw(t, p, "team.7.job.1.status", []byte(fmt.Sprintf(`{"id":"e%d","pad":"%s"}`, i, pad)))
	}
	poll.Until(t, 15*time.Second, "the slow client disconnected", func() bool {
		return testutil.ToFloat64(b.Metrics.SlowClientDisconnects) == 1
	})
	if d := testutil.ToFloat64(b.Metrics.Dropped.WithLabelValues("disconnect")); d != 0 {
		t.Fatalf("dropped{disconnect} = %v: buffered events counted as lost although the client resumes them", d)
	}
	poll.Until(t, 10*time.Second, "all consumed", func() bool { return testutil.ToFloat64(b.Metrics.Consumed) == n })

	resumed := connect(t, b, "team_id=7", b.Hub.Epoch()+"-0") // before the first event
	for i, m := range resumed.take(n, 20*time.Second) {
		if m.Name != "message" || !strings.HasPrefix(m.Data, fmt.Sprintf(`{"id":"e%d",`, i+1)) {
			t.Fatalf("resumed event %d: %s %.40s", i+1, m.Name, m.Data)
		}
	}
}

// TestStreamDeadLetterSurvivesConnectionResets: the broker closes every bridge connection
// while the dead-letter leader is copying a burst of malformed messages (an uncommitted
// transaction is rolled back with its channel). A leader takes over from the recorded
// progress: each malformed message is in the DLQ exactly once.
func TestStreamDeadLetterSurvivesConnectionResets(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream"}
	a := startBridge(t, node.URI, args...)
	b := startBridge(t, node.URI, args...)
	p := publisher(t, node.URI, exchange)
	const n = 1500
	published := make(chan error, 1)
	go func() { // a steady flow, so the leader is copying when the connections go
		var confirms []*publish.Confirmation
		for i := 1; i <= n; i++ {
			dc, err := p.PublishDeferred(context.Background(), "team.1.job.1.status", []byte(fmt.Sprintf("{broken %d", i)), publish.PublishOptions{})
			if err != nil {
				published <- err
				return
			}
			confirms = append(confirms, dc)
			time.Sleep(2 * time.Millisecond)
		}
		for _, dc := range confirms {
			if err := publish.WaitConfirm(context.Background(), dc); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	poll.Until(t, 20*time.Second, "copying under way", func() bool { return queueMessages(t, node.URI, queue+".dlq") >= 50 })
	node.CloseConnectionsNamed(t, "eventstream-bridge "+queue)
	atReset := queueMessages(t, node.URI, queue+".dlq")
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if atReset >= n {
		t.Logf("all %d copied before the reset: the reset did not hit the leader mid-way", n)
	}
	// The management API may not list a connection yet: reset again until both replicas had one.
	bothReconnected := func() bool {
		return testutil.ToFloat64(a.Metrics.Reconnects) >= 1 && testutil.ToFloat64(b.Metrics.Reconnects) >= 1
	}
	for attempt := 1; !bothReconnected(); attempt++ {
		if attempt > 5 {
			t.Fatal("the replicas' connections were not all reset")
		}
		for deadline := time.Now().Add(3 * time.Second); !bothReconnected() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if !bothReconnected() {
			node.CloseConnectionsNamed(t, "eventstream-bridge "+queue)
		}
	}
	publishRaw(t, p, "team.1.job.1.status", []byte(fmt.Sprintf("{broken %d", n+1))) // the last one: copied after all before it
	poll.Until(t, 60*time.Second, "every malformed message copied", func() bool {
		return queueMessages(t, node.URI, queue+".dlq") >= n+1
	})
	bodies := drainQueue(t, node.URI, queue+".dlq")
	seen := map[string]int{}
	for _, body := range bodies {
		seen[body]++
	}
	for i := 1; i <= n+1; i++ {
		if c := seen[fmt.Sprintf("{broken %d", i)]; c != 1 {
			t.Errorf("malformed message %d is %d times in the DLQ", i, c)
		}
	}
	if len(bodies) != n+1 {
		t.Fatalf("%d copies for %d malformed messages", len(bodies), n+1)
	}
	t.Logf("connections reset with %d of %d copied; %d copies in the end, each once", atReset, n, len(bodies))
}

// TestStreamDeadLetterCopyReturnedByTheBrokerIsStoredLater: the broker can confirm a publish it
// could not route (right after a restart, or while the dead-letter queue is unbound). The
// dead-letter leader publishes with mandatory and publishes a returned copy again until it is
// stored: with the DLQ unbound while three malformed messages are dead-lettered, all three
// land in it, once each, after it is bound again.
func TestStreamDeadLetterCopyReturnedByTheBrokerIsStoredLater(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	br := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream")
	poll.Until(t, 15*time.Second, "bridge ready", br.Ready)

	ch := rabbitmqtest.Channel(t, node.URI)
	dlx, dlq := queue+".dlx", queue+".dlq"
	if err := ch.QueueUnbind(dlq, "#", dlx, nil); err != nil {
		t.Fatal(err)
	}
	p := publisher(t, node.URI, exchange)
	for i := 1; i <= 3; i++ {
		publishRaw(t, p, "team.1.job.1.status", []byte(fmt.Sprintf("{returned %d", i)))
	}
	// The leader has published the copies once the broker counted them at the DLX (its
	// statistics lag by seconds); none could be routed.
	mgmt, err := rabbithole.NewClient(node.ManagementURI, node.Username, node.Password)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 45*time.Second, "three publishes to the unbound DLX", func() bool {
		x, err := mgmt.GetExchange("/", dlx)
		return err == nil && x.PublishStats.PublishIn >= 3
	})
	if n := queueMessages(t, node.URI, dlq); n != 0 {
		t.Fatalf("the unbound DLQ holds %d messages", n)
	}

	if err := ch.QueueBind(dlq, "#", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "three copies stored after the DLQ is bound again", func() bool {
		return queueMessages(t, node.URI, dlq) >= 3
	})
	bodies := drainQueue(t, node.URI, dlq)
	slices.Sort(bodies)
	if want := []string{"{returned 1", "{returned 2", "{returned 3"}; !slices.Equal(bodies, want) {
		t.Fatalf("DLQ holds %q, want each returned copy once: %q", bodies, want)
	}
}
