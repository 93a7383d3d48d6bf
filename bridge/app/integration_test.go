package app

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp091 "github.com/rabbitmq/amqp091-go"

	bridgeamqp "github.com/eventstream-operator/eventstream-operator/bridge/amqp"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestClassicQueueDeliversInOrderAndDeadLettersMalformed: events published with confirms reach
// a filtered client in order with multi-line-safe framing; malformed messages (not JSON,
// routing key outside the template, oversize) are dead-lettered to <queue>.dlq, counted, and do
// not disturb the stream; the queue drains (lag 0).
func TestClassicQueueDeliversInOrderAndDeadLettersMalformed(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--binding-key=team.#", "--max-message-bytes=2048")
	poll.Until(t, 5*time.Second, "readyz 200", func() bool { return httpStatus("http://"+b.OpsAddr()+"/readyz") == 200 })

	c := connect(t, b, "team_id=42", "")
	other := connect(t, b, "team_id=43", "")
	poll.Until(t, 5*time.Second, "two subscribers", func() bool { return b.Hub.Len() == 2 })

	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "42", "7", 1, 50)
	publishRaw(t, p, "team.42.job.7.status", []byte("not json"))
	publishRaw(t, p, "team.42.oops", []byte(`{}`))
	publishRaw(t, p, "team.42.job.7.status", []byte(`{"pad":"`+strings.Repeat("x", 4096)+`"}`))
	publishEvents(t, p, "42", "7", 51, 100)
	publishEvents(t, p, "43", "1", 1, 1)

	got := c.take(100, 20*time.Second)
	var lastPos int64
	for i, m := range got {
		if !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+1)) {
			t.Fatalf("event %d out of order: %s", i+1, m.Data)
		}
		cur := hub.ParseCursor(hub.EpochIDs, m.LastEventID)
		if !cur.Valid || cur.Epoch != b.Hub.Epoch() || cur.Pos <= lastPos {
			t.Fatalf("event %d has id %q after position %d", i+1, m.LastEventID, lastPos)
		}
		lastPos = cur.Pos
	}
	if m := other.take(1, 10*time.Second)[0]; !strings.Contains(m.Data, `"team_id":"43"`) {
		t.Fatalf("team 43 client got %s", m.Data)
	}

	poll.Until(t, 10*time.Second, "3 messages in the DLQ", func() bool { return queueMessages(t, node.URI, queue+".dlq") == 3 })
	for _, reason := range []string{bridgeamqp.ReasonNotJSON, bridgeamqp.ReasonRoutingKey, bridgeamqp.ReasonOversize} {
		if n := testutil.ToFloat64(b.Metrics.Malformed.WithLabelValues(reason)); n != 1 {
			t.Errorf("malformed{%s} = %v, want 1", reason, n)
		}
	}
	if n := testutil.ToFloat64(b.Metrics.Consumed); n != 104 {
		t.Errorf("consumed = %v, want 104", n)
	}
	poll.Until(t, 5*time.Second, "delivered 101", func() bool { return testutil.ToFloat64(b.Metrics.Delivered) == 101 })
	poll.Until(t, 5*time.Second, "lag 0 and queue empty", func() bool {
		return testutil.ToFloat64(b.Metrics.Lag) == 0 && queueMessages(t, node.URI, queue) == 0
	})
	if n := testutil.CollectAndCount(b.Metrics.Latency); n != 1 || histogramCount(t, b) != 101 {
		t.Errorf("latency histogram has %d observations, want 101", histogramCount(t, b))
	}
}

func histogramCount(t *testing.T, b *Bridge) uint64 {
	t.Helper()
	families, err := b.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "eventstream_bridge_delivery_latency_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestStreamQueueDeadLettersByRepublishing: streams cannot dead-letter, so the bridge
// republishes malformed messages to the DLX itself, with the reason in a header, and acks.
func TestStreamQueueDeadLettersByRepublishing(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream")
	c := connect(t, b, "", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })

	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "1", "1", 1, 1)
	publishRaw(t, p, "team.1.job.1.status", []byte("{broken"))
	publishEvents(t, p, "1", "1", 2, 2)
	got := c.take(2, 10*time.Second)
	if got[0].LastEventID == "" || got[1].LastEventID == "" {
		t.Fatalf("stream events without offsets: %+v", got)
	}
	first, second := hub.ParseCursor(hub.OffsetIDs, got[0].LastEventID), hub.ParseCursor(hub.OffsetIDs, got[1].LastEventID)
	if !first.Valid || second.Pos != first.Pos+2 {
		t.Fatalf("offset ids %q, %q: want consecutive offsets around the malformed one", got[0].LastEventID, got[1].LastEventID)
	}

	conn, err := amqp091.Dial(node.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	var d amqp091.Delivery
	poll.Until(t, 10*time.Second, "message in the DLQ", func() bool {
		var ok bool
		d, ok, err = ch.Get(queue+".dlq", true)
		return err == nil && ok
	})
	if string(d.Body) != "{broken" || d.Headers[bridgeamqp.MalformedReasonHeader] != bridgeamqp.ReasonNotJSON {
		t.Fatalf("dead-lettered %q with headers %v", d.Body, d.Headers)
	}
}

// TestTwoBridgesOnOneStreamResumeExactly: two bridges read the same stream; a client reading
// from one moves to the other with Last-Event-ID and gets every later event once, none missed.
func TestTwoBridgesOnOneStreamResumeExactly(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	a := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream")
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream")

	p := publisher(t, node.URI, exchange)
	onA := connect(t, a, "team_id=5", "")
	poll.Until(t, 5*time.Second, "subscriber on A", func() bool { return a.Hub.Len() == 1 })
	publishEvents(t, p, "5", "1", 1, 30)
	publishEvents(t, p, "6", "1", 1, 5) // other tenant interleaved
	firstPart := onA.take(30, 10*time.Second)
	onA.close()
	last := firstPart[len(firstPart)-1].LastEventID

	publishEvents(t, p, "5", "1", 31, 60) // published while the client is between replicas
	poll.Until(t, 10*time.Second, "B consumed everything", func() bool { return testutil.ToFloat64(b.Metrics.Consumed) == 65 })

	onB := connect(t, b, "team_id=5", last)
	rest := onB.take(30, 10*time.Second)
	for i, m := range append(firstPart, rest...) {
		if m.Name != "message" || !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+1)) {
			t.Fatalf("event %d: %s %s", i+1, m.Name, m.Data)
		}
	}
	publishEvents(t, p, "5", "1", 61, 61)
	if m := onB.take(1, 10*time.Second)[0]; !strings.Contains(m.Data, `"id":"e61"`) {
		t.Fatalf("after resume, live event %s (duplicate or gap)", m.Data)
	}
	poll.Until(t, 10*time.Second, "stream lag 0 on both replicas", func() bool {
		return testutil.ToFloat64(a.Metrics.Lag) == 0 && testutil.ToFloat64(b.Metrics.Lag) == 0
	})
	// The same offsets are the ids on both replicas.
	if firstPart[0].LastEventID == "" || rest[0].LastEventID == firstPart[0].LastEventID {
		t.Fatalf("ids %q %q", firstPart[0].LastEventID, rest[0].LastEventID)
	}
}

// TestSlowClientDropsAreCountedOthersUnaffected: one client that never reads; the other
// receives every event of a large burst from the broker and the drops are counted.
func TestSlowClientDropsAreCountedOthersUnaffected(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--buffer-size=32")

	stuck, err := net.Dial("tcp", b.SSEAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	_ = stuck.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stuck, "GET /api/v1/events?team_id=9 HTTP/1.1\r\nHost: x\r\n\r\n")
	fast := connect(t, b, "team_id=9", "")
	poll.Until(t, 5*time.Second, "two subscribers", func() bool { return b.Hub.Len() == 2 })

	// Lockstep with the fast client, so only the stuck one can overflow.
	p := publisher(t, node.URI, exchange)
	payload := strings.Repeat("y", 16<<10)
	const n = 300
	for i := 0; i < n; i++ {
		publishRaw(t, p, "team.9.job.1.status", []byte(`{"i":`+itoa(i)+`,"pad":"`+payload+`"}`))
		if m := fast.take(1, 10*time.Second)[0]; !strings.HasPrefix(m.Data, `{"i":`+itoa(i)+`,`) {
			t.Fatalf("fast client event %d out of order", i)
		}
	}
	if d := testutil.ToFloat64(b.Metrics.Dropped.WithLabelValues(hub.DropReasonOverflow)); d == 0 {
		t.Fatal("no overflow drops counted for the stuck client")
	}
}

// TestStreamBridgeRestartResumesExactly: a restarted stream bridge re-reads the stream's recent
// messages into its replay ring, so a client resumes after the restart with its Last-Event-ID,
// including events published while no bridge ran, without a gap or a duplicate.
func TestStreamBridgeRestartResumesExactly(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	args := []string{"--queue=" + queue, "--exchange=" + exchange, "--queue-type=stream", "--replay-size=100"}
	first := startBridge(t, node.URI, args...)
	c := connect(t, first, "team_id=3", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return first.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "3", "1", 1, 10)
	before := c.take(10, 10*time.Second)
	shutdown(t, first)
	publishEvents(t, p, "3", "1", 11, 15)

	second := startBridge(t, node.URI, args...)
	// Ready only once the history up to the stream's tail has been re-read.
	poll.Until(t, 10*time.Second, "ready after re-reading", func() bool { return second.Ready() })
	if n := testutil.ToFloat64(second.Metrics.Consumed); n < 15 {
		t.Fatalf("ready after re-reading %v of 15 messages", n)
	}
	resumed := connect(t, second, "team_id=3", before[len(before)-1].LastEventID)
	after := resumed.take(5, 10*time.Second)
	for i, m := range append(before, after...) {
		if m.Name != "message" || !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+1)) {
			t.Fatalf("event %d after restart: %s %s", i+1, m.Name, m.Data)
		}
	}
}

// TestStreamResumeBeforeReplayWindowReadsTheStream: a client whose Last-Event-ID is older than
// the replay ring is served by a stream reader of its own from its offset on: every event
// after it, in order, without a gap, and then live events.
func TestStreamResumeBeforeReplayWindowReadsTheStream(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	b := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange, "--queue-type=stream", "--replay-size=5", "--buffer-size=4")
	first := connect(t, b, "team_id=8", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return b.Hub.Len() == 1 })
	p := publisher(t, node.URI, exchange)
	publishEvents(t, p, "8", "1", 1, 3)
	cursor := first.take(3, 10*time.Second)[2].LastEventID
	first.close()
	publishEvents(t, p, "9", "1", 1, 10) // other tenant: pushes the ring past the cursor
	publishEvents(t, p, "8", "1", 4, 30)
	poll.Until(t, 10*time.Second, "all consumed", func() bool { return testutil.ToFloat64(b.Metrics.Consumed) == 40 })
	if !b.Hub.NeedsStreamRead(hub.ParseCursor(hub.OffsetIDs, cursor)) {
		t.Fatal("cursor is still inside the replay window; the test does not exercise the stream reader")
	}

	resumed := connect(t, b, "team_id=8", cursor)
	got := resumed.take(27, 20*time.Second) // more than the buffer of 4: flow-controlled, no drops
	publishEvents(t, p, "8", "1", 31, 31)
	got = append(got, resumed.take(1, 10*time.Second)...)
	for i, m := range got {
		if m.Name != "message" || !strings.Contains(m.Data, fmt.Sprintf(`"id":"e%d"`, i+4)) {
			t.Fatalf("event %d: %s %s", i+4, m.Name, m.Data)
		}
	}
	if d := testutil.ToFloat64(b.Metrics.Dropped.WithLabelValues(hub.DropReasonOverflow)); d != 0 {
		t.Fatalf("%v events dropped for a stream-reader client", d)
	}
}

// TestSecondClassicBridgeWaitsForTheFirst: on a classic queue only one bridge may consume (a
// queue gives each message to one consumer, so two would split the events between them). The
// second stays not ready while the first runs, then takes over when it stops.
func TestSecondClassicBridgeWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	node := rabbitmqtest.Shared(t)
	queue, exchange := uniqueName(t, "q"), uniqueName(t, "x")
	t.Cleanup(func() { rabbitmqtest.DeleteTopology(node.URI, queue, exchange) })
	first := startBridge(t, node.URI, "--queue="+queue, "--exchange="+exchange)
	second, err := startUnconnected(t, node.URI, "--queue="+queue, "--exchange="+exchange)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the second bridge to fail at least once", func() bool {
		return httpStatus("http://"+second.OpsAddr()+"/readyz") == 503 && !second.Consumer.Ready()
	})
	if httpStatus("http://"+first.OpsAddr()+"/readyz") != 200 {
		t.Fatal("first bridge not ready")
	}
	shutdown(t, first)
	poll.Until(t, 15*time.Second, "the second bridge to take over", func() bool {
		return httpStatus("http://"+second.OpsAddr()+"/readyz") == 200
	})
	c := connect(t, second, "team_id=1", "")
	poll.Until(t, 5*time.Second, "subscriber", func() bool { return second.Hub.Len() == 1 })
	publishEvents(t, publisher(t, node.URI, exchange), "1", "1", 1, 5)
	c.take(5, 10*time.Second)
}
