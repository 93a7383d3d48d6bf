package brokertest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

func TestRedeclaringWithOtherArgumentsIsPreconditionFailed(t *testing.T) {
	ctx := context.Background()
	b := New()
	must(t, b.DeclareQueue(ctx, "q", "quorum"))
	must(t, b.DeclareQueue(ctx, "q", "quorum"))
	must(t, b.DeclareExchange(ctx, "x", "topic"))

	var answer *broker.BrokerError
	if err := b.DeclareQueue(ctx, "q", "classic"); !errors.As(err, &answer) || answer.StatusCode != 400 {
		t.Errorf("re-declare queue with another type: got %v, want a 400 BrokerError", err)
	}
	if err := b.DeclareExchange(ctx, "x", "fanout"); !errors.As(err, &answer) || answer.StatusCode != 400 {
		t.Errorf("re-declare exchange with another type: got %v, want a 400 BrokerError", err)
	}
	b.AddQueue(broker.Queue{Name: "foreign", Durable: true, Arguments: map[string]any{"x-message-ttl": 5}})
	if err := b.DeclareQueue(ctx, "foreign", "classic"); !errors.As(err, &answer) {
		t.Errorf("declare over a queue with other arguments: got %v, want a BrokerError", err)
	}
}

func TestDeletionTakesBindingsAlong(t *testing.T) {
	ctx := context.Background()
	b := New()
	must(t, b.DeclareExchange(ctx, "x", "topic"))
	must(t, b.DeclareQueue(ctx, "q1", "classic"))
	must(t, b.DeclareQueue(ctx, "q2", "classic"))
	must(t, b.Bind(ctx, broker.Binding{Source: "x", Queue: "q1", RoutingKey: "a.#"}))
	must(t, b.Bind(ctx, broker.Binding{Source: "x", Queue: "q2", RoutingKey: ""}))
	if err := b.Bind(ctx, broker.Binding{Source: "missing", Queue: "q1"}); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("bind from a missing exchange: got %v, want ErrNotFound", err)
	}

	got, err := b.ListQueueBindings(ctx, "q2")
	must(t, err)
	want := []broker.Binding{
		{Source: "", Queue: "q2", RoutingKey: "q2", PropertiesKey: "q2"},
		{Source: "x", Queue: "q2", RoutingKey: "", PropertiesKey: "~"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bindings of q2: got %+v, want %+v", got, want)
	}

	must(t, b.DeleteQueue(ctx, "q1"))
	if bs, _ := b.ListExchangeBindings(ctx, "x"); len(bs) != 1 || bs[0].Queue != "q2" {
		t.Errorf("after deleting q1, exchange bindings: got %+v, want only q2's", bs)
	}
	must(t, b.Unbind(ctx, want[1]))
	if err := b.Unbind(ctx, want[1]); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("unbind twice: got %v, want ErrNotFound", err)
	}
	must(t, b.DeleteExchange(ctx, "x"))
	if err := b.DeleteExchange(ctx, "x"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("delete exchange twice: got %v, want ErrNotFound", err)
	}
}

func TestPolicyDefinitionComesBackAsJSON(t *testing.T) {
	ctx := context.Background()
	b := New()
	must(t, b.PutPolicy(ctx, broker.Policy{Name: "p", Pattern: "^q$", ApplyTo: "queues",
		Definition: map[string]any{"message-ttl": int64(600000)}}))
	p, err := b.GetPolicy(ctx, "p")
	must(t, err)
	if v, ok := p.Definition["message-ttl"].(float64); !ok || v != 600000 {
		t.Errorf("message-ttl: got %#v, want float64 600000", p.Definition["message-ttl"])
	}
}

func TestFailInjectsUntilHeal(t *testing.T) {
	ctx := context.Background()
	b := New()
	b.Fail(DeclareQueue, Unreachable)
	if err := b.DeclareQueue(ctx, "q", "classic"); !errors.Is(err, broker.ErrUnreachable) {
		t.Errorf("declare with a fault: got %v, want ErrUnreachable", err)
	}
	if _, err := b.GetQueue(ctx, "q"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("a failed declaration left a queue: %v", err)
	}
	b.Fail(AnyOperation, Unreachable)
	if _, err := b.ListPolicies(ctx); !errors.Is(err, broker.ErrUnreachable) {
		t.Errorf("list policies with a fault on every operation: got %v, want ErrUnreachable", err)
	}
	b.Heal()
	must(t, b.DeclareQueue(ctx, "q", "classic"))
	if n := b.Calls(DeclareQueue); n != 2 {
		t.Errorf("DeclareQueue calls: got %d, want 2", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
