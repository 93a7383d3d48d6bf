package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventstream-operator/eventstream-operator/bridge/auth"
	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/snapshot"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// newSnapshotHarness is a harness whose hub keeps a snapshot store, for a caller reading
// tenants (nil: every tenant).
func newSnapshotHarness(t *testing.T, tenants []string, bufferSize int) *harness {
	t.Helper()
	store := snapshot.New(snapshot.Config{MaxKeys: 1000, MaxBytes: 1 << 20, TenantIndex: 0})
	return newHarnessWithHub(t, hub.Config{Placeholders: 2, Epoch: "0000abcd", ReplaySize: 100, BufferSize: bufferSize, LastValues: store},
		func(c *Config) {
			c.Authenticator = fixedAuth{p: auth.Principal{Subject: "u", Tenants: tenants, AllTenants: tenants == nil}}
		})
}

// readSnapshot reads a snapshot up to and including snapshot-end and returns its events.
func readSnapshot(t *testing.T, d *sse.Decoder) (events []sse.Message, end sse.Message) {
	t.Helper()
	for {
		m := next(t, d)
		switch m.Name {
		case SnapshotEventName:
			events = append(events, m)
		case SnapshotEndEventName:
			return events, m
		default:
			t.Fatalf("event %q (%q) before snapshot-end", m.Name, m.Data)
		}
	}
}

func datas(events []sse.Message) string {
	var out []string
	for _, m := range events {
		out = append(out, m.Data)
	}
	return strings.Join(out, ",")
}

// A client asking for snapshot=1 gets the newest event of each key it may read, in
// routing-key order and without ids, then snapshot-end with the id of the snapshot's position,
// then live events.
func TestSnapshotOnConnectThenLive(t *testing.T) {
	h := newSnapshotHarness(t, []string{"1", "3"}, 64)
	h.publish("1", "b", `"1b-old"`)
	h.publish("1", "a", `"1a"`)
	h.publish("2", "a", `"2a"`)
	h.publish("1", "b", `"1b"`)
	h.publish("3", "c", `"3c"`) // id 0000abcd-5
	_, d := h.open(t, "snapshot=1", nil)
	events, end := readSnapshot(t, d)
	if got, want := datas(events), `"1a","1b","3c"`; got != want {
		t.Errorf("snapshot = %s, want %s", got, want)
	}
	for _, m := range events {
		if m.LastEventID != "" {
			t.Errorf("snapshot event %s moved the last event id to %q", m.Data, m.LastEventID)
		}
	}
	if end.LastEventID != "0000abcd-5" || end.Data != `{"keys":3,"partial":false}` {
		t.Errorf("snapshot-end id %q data %s, want 0000abcd-5 {\"keys\":3,\"partial\":false}", end.LastEventID, end.Data)
	}
	h.publish("2", "a", `"2a-live"`)
	h.publish("1", "a", `"1a-live"`)
	if m := next(t, d); m.Name != "message" || m.Data != `"1a-live"` || m.LastEventID != "0000abcd-7" {
		t.Errorf("live event %s %s id %s, want message \"1a-live\" 0000abcd-7", m.Name, m.Data, m.LastEventID)
	}
	if got := testutil.ToFloat64(h.metrics.SnapshotEventsSent); got != 3 {
		t.Errorf("snapshot events sent = %v, want 3", got)
	}
}

// Tenant scoping and filters apply to the snapshot exactly as to live events: another
// tenant's keys never appear, whatever the query tries.
func TestSnapshotAttacks(t *testing.T) {
	h := newSnapshotHarness(t, []string{"1"}, 64)
	h.publish("1", "7", `"mine"`)
	h.publish("2", "7", `"theirs"`)
	h.publish("10", "7", `"prefix"`)
	h.publish("1", "8", `"other-job"`)
	for _, q := range []string{
		"snapshot=1&team_id=2", "snapshot=1&team_id=1&team_id=2", "team_id=2&snapshot=1&lastEventId=x",
	} {
		resp, err := http.Get(h.server.URL + "/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || strings.Contains(string(body), "theirs") {
			t.Errorf("?%s = %d %q, want 403 without data", q, resp.StatusCode, body)
		}
	}
	for _, q := range []string{
		"snapshot=1&team_id=*", "snapshot=1&team_id=%23", "snapshot=1&team_id=1.2", "snapshot=1&team_id=",
		"snapshot=1&snapshot=1", "snapshot=2", "snapshot=1&team=2", "snapshot=1&job_id=*",
	} {
		resp, err := http.Get(h.server.URL + "/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || strings.Contains(string(body), "data:") {
			t.Errorf("?%s = %d %q, want 400", q, resp.StatusCode, body)
		}
	}
	for q, want := range map[string]string{
		"snapshot=1":                                `"mine","other-job"`,
		"snapshot=1&team_id=1":                      `"mine","other-job"`,
		"snapshot=1&job_id=7":                       `"mine"`,
		"snapshot=1&lastEventId=ffffffff-1":         `"mine","other-job"`, // gap, then the snapshot
		"snapshot=true&team_id=1&job_id=7&job_id=9": `"mine"`,
	} {
		_, d := h.open(t, q, nil)
		m := next(t, d)
		if m.Name == GapEventName {
			m = next(t, d)
			if m.Name != SnapshotEventName && m.Name != SnapshotEndEventName {
				t.Fatalf("?%s: %s after the gap", q, m.Name)
			}
		}
		events := []sse.Message{m}
		if m.Name != SnapshotEndEventName {
			more, _ := readSnapshot(t, d)
			events = append(events, more...)
		} else {
			events = nil
		}
		if got := datas(events); got != want {
			t.Errorf("?%s: snapshot %s, want %s", q, got, want)
		}
	}
	// A principal without tenants gets nothing, snapshot or not.
	noTenants := newSnapshotHarness(t, []string{}, 64)
	noTenants.publish("1", "7", `"mine"`)
	resp, err := http.Get(noTenants.server.URL + "/?snapshot=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("principal without tenants: %d, want 403", resp.StatusCode)
	}
}

// A resumable Last-Event-ID resumes (no snapshot); snapshot=0 and a bridge without a store
// behave as before, and snapshot=1 on such a bridge is a 400 that says why.
func TestSnapshotOnlyWhenResumingIsImpossible(t *testing.T) {
	h := newSnapshotHarness(t, nil, 64)
	h.publish("1", "7", `"a"`)
	h.publish("1", "7", `"b"`)
	_, d := h.open(t, "snapshot=1&lastEventId=0000abcd-1", nil)
	if m := next(t, d); m.Name != "message" || m.Data != `"b"` {
		t.Errorf("resume with snapshot=1: %s %s, want the replayed message \"b\"", m.Name, m.Data)
	}
	_, d = h.open(t, "snapshot=0", nil)
	h.waitClients(t, 2)
	h.publish("1", "7", `"c"`)
	if m := next(t, d); m.Name != "message" || m.Data != `"c"` {
		t.Errorf("snapshot=0: %s %s, want the live message \"c\"", m.Name, m.Data)
	}
	plain := newHarness(t, nil)
	resp, err := http.Get(plain.server.URL + "/?snapshot=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "snapshots are not enabled") {
		t.Errorf("snapshot=1 without a store: %d %q", resp.StatusCode, body)
	}
}

// After an overflow a snapshot client gets the gap, then the snapshot of the current state,
// then only events after it: the state it rebuilds is exact, and none of the events the
// snapshot covers comes again.
func TestSnapshotAfterAnOverflowGap(t *testing.T) {
	h := newSnapshotHarness(t, nil, 4)
	s, _, snap := h.hub.SubscribeSnapshot(hub.Filter{{"1"}, nil}, hub.Cursor{})
	sink := &recordingSink{}
	if !h.handler.writeSnapshot(sink, snap) {
		t.Fatal("write")
	}
	for i := 0; i < 10; i++ {
		h.publish("1", string(rune('a'+i%3)), `"v`+string(rune('0'+i))+`"`)
	}
	frames, gap, _ := s.Take(nil)
	h.publish("1", "a", `"after-take"`)
	if !h.handler.send(sink, true, s, gap, frames) {
		t.Fatal("send")
	}
	h.publish("1", "b", `"after-snapshot"`)
	frames, gap, _ = s.Take(nil)
	if !h.handler.send(sink, true, s, gap, frames) {
		t.Fatal("send")
	}
	d := sse.NewDecoder(strings.NewReader(sink.output()), 0)
	var got []string
	for {
		m, err := d.Next()
		if err != nil {
			break
		}
		got = append(got, m.Name+" "+m.Data)
	}
	want := []string{
		`snapshot-end {"keys":0,"partial":false}`,
		`gap {"reason":"overflow","dropped":6}`,
		`snapshot "after-take"`, `snapshot "v7"`, `snapshot "v8"`,
		`snapshot-end {"keys":3,"partial":false}`,
		`message "after-snapshot"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h.hub.Unsubscribe(s)
}
