// Package rabbitmqtest gives tests a real RabbitMQ: the shared private node that `make test`
// starts (hack/rabbitmq.sh), or a dedicated node of their own for fault tests that stop and
// start the broker without disturbing tests running in parallel.
//
// Without RABBITMQ_TEST_URI a test is skipped with a reason, unless
// EVENTSTREAM_REQUIRE_INTEGRATION=1 (set by `make test`), where it fails instead: the README's
// test command never silently skips the integration layer.
package rabbitmqtest

import (
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// T is the part of testing.TB (and of Ginkgo's GinkgoT()) this package uses.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
}

// Node is a RabbitMQ node reachable over AMQP and the management HTTP API.
type Node struct {
	// URI is the AMQP URI with credentials (guest/guest on the test node).
	URI string
	// ManagementURI is the management API's base URL, without credentials.
	ManagementURI string
	// Username and Password are the management API credentials.
	Username, Password string

	env []string // nil for the shared node, which tests must not stop
}

// Shared returns the node started by `make test`. It must not be stopped by tests.
func Shared(t T) *Node {
	t.Helper()
	uri, mgmt := os.Getenv("RABBITMQ_TEST_URI"), os.Getenv("RABBITMQ_TEST_MANAGEMENT_URI")
	if uri == "" || mgmt == "" {
		missing(t)
	}
	return &Node{URI: uri, ManagementURI: mgmt, Username: "guest", Password: "guest"}
}

// Dedicated starts a node of the test's own, named name, on free ports derived from the name,
// and stops it (deleting its data) when the test ends. Start-up takes several seconds; use it
// only for tests that stop or restart the broker.
func Dedicated(t T, name string) *Node {
	t.Helper()
	Shared(t) // same preconditions: the machine has RabbitMQ installed by `make test`
	ports := freePortBlock(t, name)
	dir := filepath.Join(os.TempDir(), "eventstream-rabbitmq-"+name+"-"+strconv.Itoa(os.Getpid()))
	n := &Node{
		URI:           fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", ports[0]),
		ManagementURI: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		Username:      "guest", Password: "guest",
		env: append(os.Environ(),
			"RABBITMQ_TEST_DIR="+dir,
			"RABBITMQ_TEST_NODENAME=evs-"+name+"@localhost",
			"RABBITMQ_TEST_AMQP_PORT="+strconv.Itoa(ports[0]),
			"RABBITMQ_TEST_MGMT_PORT="+strconv.Itoa(ports[1]),
			"RABBITMQ_TEST_STREAM_PORT="+strconv.Itoa(ports[2]),
			"RABBITMQ_TEST_DIST_PORT="+strconv.Itoa(ports[3]),
			"RABBITMQ_TEST_EPMD_PORT="+strconv.Itoa(ports[4]),
		),
	}
	t.Cleanup(func() {
		_ = n.script("stop")
		_ = os.RemoveAll(dir)
	})
	if err := n.script("start"); err != nil {
		t.Fatalf("start dedicated RabbitMQ node %s: %v", name, err)
	}
	return n
}

// Stop stops a dedicated node; its data (durable queues and messages) survives for Start.
func (n *Node) Stop(t T) {
	t.Helper()
	if n.env == nil {
		t.Fatal("rabbitmqtest: the shared node must not be stopped; use Dedicated")
	}
	if err := n.script("stop"); err != nil {
		t.Fatalf("stop RabbitMQ: %v", err)
	}
}

// Start starts a stopped dedicated node again and waits until AMQP and management answer.
func (n *Node) Start(t T) {
	t.Helper()
	if n.env == nil {
		t.Fatal("rabbitmqtest: the shared node is started by make test")
	}
	if err := n.script("start"); err != nil {
		t.Fatalf("start RabbitMQ: %v", err)
	}
}

func (n *Node) script(verb string) error {
	cmd := exec.Command(filepath.Join(projectRoot(), "hack", "rabbitmq.sh"), verb)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hack/rabbitmq.sh %s: %w: %s", verb, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func missing(t T) {
	t.Helper()
	const reason = "RABBITMQ_TEST_URI is not set: integration tests need the private RabbitMQ node; run `make test`"
	if os.Getenv("EVENTSTREAM_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// freePortBlock returns five free ports below 32768 (the machines' ephemeral range starts
// there and RabbitMQ fails to bind inside it), starting at a name-derived offset.
func freePortBlock(t T, name string) [5]int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	start := 26000 + int(h.Sum32()%500)*10
	for base := start; base < 32700; base += 10 {
		var ports [5]int
		ok := true
		for i := range ports {
			ports[i] = base + i
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[i]))
			if err != nil {
				ok = false
				break
			}
			_ = l.Close()
		}
		if ok {
			return ports
		}
	}
	t.Fatal("rabbitmqtest: no free port block below 32768")
	return [5]int{}
}

// projectRoot is the repository root, found from this file's location.
func projectRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DeleteTopology removes, best effort, what a bridge or the operator declares for queue and
// exchange: the queue, <queue>.dlq, <queue>.dlq-progress, the exchange and <queue>.dlx. Tests call it in a cleanup
// so the shared node does not accumulate their objects.
func DeleteTopology(uri, queue, exchange string) {
	conn, err := amqp091.Dial(uri)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	_, _ = ch.QueueDelete(queue, false, false, false)
	_, _ = ch.QueueDelete(contract.DeadLetterQueue(queue), false, false, false)
	_, _ = ch.QueueDelete(contract.DeadLetterProgressQueue(queue), false, false, false) // stream mode's dead-letter progress
	_ = ch.ExchangeDelete(exchange, false, false)
	_ = ch.ExchangeDelete(contract.DeadLetterExchange(queue), false, false)
}

// Channel opens a connection and a channel to uri for a test's own declarations and reads;
// the connection is closed when the test ends.
func Channel(t T, uri string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(uri)
	if err != nil {
		t.Fatalf("dial RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

// QueueMessages is the number of ready messages in queue (a passive declare on a channel of
// its own, as a passive declare of a missing queue closes the channel); ok is false when the
// queue does not exist.
func QueueMessages(t T, uri, queue string) (n int, ok bool) {
	t.Helper()
	conn, err := amqp091.Dial(uri)
	if err != nil {
		t.Fatalf("dial RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, false
	}
	return q.Messages, true
}
