package server

import (
	"strconv"

	"github.com/eventstream-operator/eventstream-operator/bridge/hub"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// snapshotBatch is how many snapshot events are written at once: a large snapshot goes out in
// writes of bounded size, sharing the frames' bytes (nothing is copied per client).
const snapshotBatch = 256

// snapshotEventLine is written before each frame of a snapshot, whose id line is left out.
var snapshotEventLine = []byte("event: " + SnapshotEventName + "\n")

// writeSnapshot writes snap: one "snapshot" event per key in routing-key order, each the live
// event's data without its id (so the client's last event id does not move while a snapshot
// may be cut off), then "snapshot-end" carrying the id of the position the snapshot reflects
// and {"keys":n,"partial":bool}. It returns false when the client is gone.
func (h *Handler) writeSnapshot(sink streamSink, snap *hub.Snapshot) bool {
	bufs := make([][]byte, 0, 2*min(len(snap.Frames), snapshotBatch))
	for i := 0; i < len(snap.Frames); i += snapshotBatch {
		bufs = bufs[:0]
		for _, f := range snap.Frames[i:min(i+snapshotBatch, len(snap.Frames))] {
			bufs = append(bufs, snapshotEventLine, f.WithoutID())
		}
		if !sink.writeBuffers(bufs) {
			return false
		}
	}
	clear(bufs)
	if !sink.write(appendSnapshotEnd(nil, snap)) {
		return false
	}
	h.cfg.Metrics.SnapshotsSent.Inc()
	h.cfg.Metrics.SnapshotEventsSent.Add(float64(len(snap.Frames)))
	return true
}

// appendSnapshotEnd encodes the end of a snapshot: event type "snapshot-end", the id of the
// snapshot's position (none when the bridge has no position yet), and JSON data
// {"keys":n,"partial":bool}.
func appendSnapshotEnd(dst []byte, snap *hub.Snapshot) []byte {
	data := make([]byte, 0, 40)
	data = append(data, `{"keys":`...)
	data = strconv.AppendInt(data, int64(len(snap.Frames)), 10)
	data = append(data, `,"partial":`...)
	data = strconv.AppendBool(data, snap.Partial)
	data = append(data, '}')
	return sse.AppendEvent(dst, sse.Event{ID: snap.ID, Name: SnapshotEndEventName, Data: data})
}
