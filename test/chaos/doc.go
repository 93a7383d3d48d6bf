// Package chaos is the project's fault-injection suite (issue 14, docs/reliability.md): it runs
// the real bridge binary against a RabbitMQ node of its own, injects the faults a production
// deployment meets, and counts what every client got.
//
// The parts:
//   - Deployment: one EventStream's bridges (test/bench.StartBridge, built from ./cmd/bridge),
//     each replica on fixed addresses so a restarted process keeps its URL, each reaching the
//     broker through its own Proxy.
//   - Proxy: a TCP proxy between a bridge and the broker that resets connections (RST) or
//     blackholes them (nothing passes, nothing is closed) until healed.
//   - Publisher: publishes through api/events' Publisher, one event at a time, each carrying its
//     sequence number; an event is owed to clients only when Publish returned nil.
//   - Client: an SSE client that behaves like a browser's EventSource (retry:, Last-Event-ID,
//     reconnect after every end, give up only on a non-200), moving to the next replica URL at
//     every reconnect, and recording every event and gap with its arrival time.
//   - tallyClient: classifies every owed event per client: delivered, lost silently, lost with a
//     gap, superseded (lastValue), duplicated, reordered; and the classic/quorum down window.
//
// TestChaos runs the scenarios one after the other (they share the broker): stream replicas
// killed, broker restarted, connections reset, network blackholed, classic/quorum bridge killed
// and drained, slow clients per overflow policy, and a soak. Each fails on any silent loss or
// missed target and adds its figures to a markdown report printed at the end. CHAOS_PROFILE
// selects the size: short (default: go test, make test) or full (make test-chaos).
// CHAOS_LOG_DIR keeps the bridges' logs; CHAOS_REPORT writes the markdown to a file.
package chaos
