// Package bench is the performance harness behind `make bench` (docs/performance.md).
//
// It measures the real bridge binary, fed through the private RabbitMQ node, against the
// machine itself: a load client holding thousands of SSE connections on loopback (spread over
// several 127.0.0.x source addresses), and a minimal "wire-limit" server that writes the same
// frames to the same kind of connections with nothing else (no broker, no hub). Processes are
// split so that no process holds more than ~10,000 sockets (the per-process open-file limit here
// is 20,000): the bridge and the wire server each run in their own process, the load client and
// publisher in the orchestrating one.
//
// The scenarios (Idle, FanOut, Broadcast, Churn; the operator scenario lives in cmd/bench) are
// plain functions returning results, so the same code runs at full size from cmd/bench and at
// a tiny size in the CI smoke test (smoke_test.go).
package bench
