package broker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker/brokertest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// TestDeclare: Declare declares exchanges, queues, bindings and policies in one request,
// leaves an existing queue with other arguments and an exchange of another type as they are
// (the reconciler checks them first), writes policies over, and the listings show the result;
// on the real management API (in a virtual host whose name needs escaping) and on
// brokertest's model of it alike.
func TestDeclare(t *testing.T) {
	t.Run("management API", func(t *testing.T) {
		node := rabbitmqtest.Shared(t)
		mgmt, err := rabbithole.NewClient(node.ManagementURI, node.Username, node.Password)
		if err != nil {
			t.Fatal(err)
		}
		vhost := fmt.Sprintf("declare/test %d", rand.Uint64())
		if _, err := mgmt.PutVhost(vhost, rabbithole.VhostSettings{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = mgmt.DeleteVhost(vhost) })
		if _, err := mgmt.UpdatePermissionsIn(vhost, node.Username, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
			t.Fatal(err)
		}
		bc, err := broker.NewManagementFactory(100, 100, nil).New(broker.Connection{
			ManagementURL: node.ManagementURI, Username: node.Username, Password: node.Password, VHost: vhost})
		if err != nil {
			t.Fatal(err)
		}
		checkDeclare(t, bc, func(q string) {
			if _, err := mgmt.DeclareQueue(vhost, q, rabbithole.QueueSettings{Durable: true,
				Arguments: map[string]any{"x-queue-type": "classic", "x-message-ttl": 1000}}); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("brokertest", func(t *testing.T) {
		b := brokertest.New()
		checkDeclare(t, b, func(q string) {
			b.AddQueue(broker.Queue{Name: q, Type: "classic", Durable: true,
				Arguments: map[string]any{"x-queue-type": "classic", "x-message-ttl": 1000}})
		})
	})
}

// checkDeclare runs the declarations against bc; addForeignQueue puts a queue with a TTL
// argument on the broker as someone else would.
func checkDeclare(t *testing.T, bc broker.Client, addForeignQueue func(name string)) {
	t.Helper()
	ctx := context.Background()
	addForeignQueue("foreign")
	policy := broker.Policy{Name: "p", Pattern: "^orders$", ApplyTo: "queues", Priority: 10,
		Definition: map[string]any{"message-ttl": 60000}}
	d := broker.Declarations{
		Exchanges: []broker.Exchange{{Name: "orders.topic", Type: "topic"}, {Name: "orders.dlx", Type: "fanout"}},
		Queues:    []broker.Queue{{Name: "orders", Type: "quorum"}, {Name: "orders.dlq", Type: "classic"}, {Name: "foreign", Type: "classic"}},
		Bindings: []broker.Binding{{Source: "orders.topic", Queue: "orders", RoutingKey: "jobs.#"},
			{Source: "orders.dlx", Queue: "orders.dlq"}},
		Policies: []broker.Policy{policy},
	}
	if err := bc.Declare(ctx, d); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	if err := bc.Declare(ctx, d); err != nil {
		t.Fatalf("Declare again: %v", err)
	}
	policy.Definition = map[string]any{"message-ttl": 5000}
	if err := bc.Declare(ctx, broker.Declarations{
		Exchanges: []broker.Exchange{{Name: "orders.topic", Type: "fanout"}}, Policies: []broker.Policy{policy}}); err != nil {
		t.Fatalf("Declare an exchange of another type and a changed policy: %v", err)
	}

	exchanges, err := bc.ListExchanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, x := range exchanges {
		types[x.Name] = x.Type
	}
	if types["orders.topic"] != "topic" || types["orders.dlx"] != "fanout" {
		t.Errorf("exchanges = %v, want orders.topic topic (kept) and orders.dlx fanout", types)
	}
	queues, err := bc.ListQueues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]broker.Queue{}
	for _, q := range queues {
		byName[q.Name] = q
	}
	if q := byName["orders"]; q.Type != "quorum" || !q.Durable {
		t.Errorf("queue orders = %+v, want a durable quorum queue", q)
	}
	if _, ok := byName["orders.dlq"]; !ok {
		t.Error("queue orders.dlq not declared")
	}
	if ttl := byName["foreign"].Arguments["x-message-ttl"]; fmt.Sprint(ttl) != "1000" {
		t.Errorf("the foreign queue's arguments changed: %v", byName["foreign"].Arguments)
	}
	bindings, err := bc.ListBindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, b := range bindings {
		found[b.Source+"→"+b.Queue+" "+b.RoutingKey] = b.PropertiesKey != ""
	}
	for _, want := range []string{"orders.topic→orders jobs.#", "orders.dlx→orders.dlq "} {
		if !found[want] {
			t.Errorf("binding %q missing or without a properties key: %v", want, found)
		}
	}
	policies, err := bc.ListPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) != 1 || fmt.Sprint(policies[0].Definition["message-ttl"]) != "5000" {
		t.Errorf("policies = %+v, want p with message-ttl 5000", policies)
	}
}

// TestDeclareWithoutAdministratorTag: RabbitMQ imports definitions only for administrators;
// a user with the policymaker tag (what the operator documents) gets the same objects declared
// one request each, this time and the next.
func TestDeclareWithoutAdministratorTag(t *testing.T) {
	node := rabbitmqtest.Shared(t)
	mgmt, err := rabbithole.NewClient(node.ManagementURI, node.Username, node.Password)
	if err != nil {
		t.Fatal(err)
	}
	vhost := fmt.Sprintf("declare-policymaker-%d", rand.Uint64())
	user := fmt.Sprintf("policymaker-%d", rand.Uint64())
	if _, err := mgmt.PutVhost(vhost, rabbithole.VhostSettings{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = mgmt.DeleteVhost(vhost) })
	if _, err := mgmt.PutUser(user, rabbithole.UserSettings{Password: "secret", Tags: rabbithole.UserTags{"policymaker"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = mgmt.DeleteUser(user) })
	if _, err := mgmt.UpdatePermissionsIn(vhost, user, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	bc, err := broker.NewManagementFactory(100, 100, nil).New(broker.Connection{
		ManagementURL: node.ManagementURI, Username: user, Password: "secret", VHost: vhost})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, queue := range []string{"first", "second"} {
		d := broker.Declarations{
			Exchanges: []broker.Exchange{{Name: queue + ".topic", Type: "topic"}},
			Queues:    []broker.Queue{{Name: queue, Type: "classic"}},
			Policies: []broker.Policy{{Name: queue, Pattern: "^" + queue + "$", ApplyTo: "queues", Priority: 10,
				Definition: map[string]any{"message-ttl": 60000}}},
			Bindings: []broker.Binding{{Source: queue + ".topic", Queue: queue, RoutingKey: "jobs.#"}},
		}
		if err := bc.Declare(ctx, d); err != nil {
			t.Fatalf("Declare %s as a policymaker: %v", queue, err)
		}
		if _, err := mgmt.GetQueue(vhost, queue); err != nil {
			t.Errorf("queue %s: %v", queue, err)
		}
		if _, err := mgmt.GetPolicy(vhost, queue); err != nil {
			t.Errorf("policy %s: %v", queue, err)
		}
		bindings, err := mgmt.ListQueueBindings(vhost, queue)
		if err != nil || len(bindings) != 2 { // the default exchange's and jobs.#
			t.Errorf("bindings of %s = %v, %v", queue, bindings, err)
		}
	}
}
