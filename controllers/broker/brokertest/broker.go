// Package brokertest provides Broker, an in-memory broker.Client for unit tests of the
// EventStream reconciler: they run in milliseconds, without RabbitMQ.
//
// What it models, as the management API client (controllers/broker) reports it:
//   - one virtual host holding exchanges, queues (with type, durability and arguments),
//     exchange-to-queue bindings and policies;
//   - declarations are idempotent; re-declaring an exchange with another type or a queue with
//     other arguments is a 400 BrokerError (PRECONDITION_FAILED), as RabbitMQ answers; Declare
//     (a definitions import) leaves existing exchanges and queues as they are, as RabbitMQ does;
//   - a missing object is broker.ErrNotFound for reads, deletions and bindings;
//   - deleting a queue removes its bindings, deleting an exchange the bindings from it;
//   - a queue's implicit binding to the default exchange is listed, like RabbitMQ does;
//   - policy definitions come back as JSON decodes them (numbers as float64);
//   - injected faults per operation (Fail), and queue figures set by the test (SetFigures).
//
// What it does not model: several virtual hosts or brokers (every connection reaches the same
// one), credentials, TLS and rate limits; messages, routing, TTL, dead-lettering and the
// effect of a policy on a queue (which policy applies, PCRE patterns); exchange-to-exchange
// bindings, binding arguments, exclusive or auto-delete queues, operator policies; latency and
// partial failures inside one request.
package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"sync"

	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// Operation names a broker.Client method, as the management client labels its requests.
type Operation string

// The operations of broker.Client.
const (
	GetExchange          Operation = "get_exchange"
	ListExchanges        Operation = "list_exchanges"
	DeclareExchange      Operation = "declare_exchange"
	DeleteExchange       Operation = "delete_exchange"
	GetQueue             Operation = "get_queue"
	ListQueues           Operation = "list_queues"
	DeclareQueue         Operation = "declare_queue"
	DeleteQueue          Operation = "delete_queue"
	ListQueueBindings    Operation = "list_queue_bindings"
	ListExchangeBindings Operation = "list_exchange_bindings"
	ListBindings         Operation = "list_bindings"
	Bind                 Operation = "bind"
	Unbind               Operation = "unbind"
	GetPolicy            Operation = "get_policy"
	ListPolicies         Operation = "list_policies"
	PutPolicy            Operation = "put_policy"
	DeletePolicy         Operation = "delete_policy"
	Declare              Operation = "declare"
)

// AnyOperation makes Fail apply to every operation.
const AnyOperation Operation = "*"

// Unreachable is the error of a broker that cannot be reached, for Fail.
var Unreachable = fmt.Errorf("injected: connection refused: %w", broker.ErrUnreachable)

// Broker is an in-memory broker.Client. It is safe for concurrent use; every call is atomic.
// The zero value is not usable: call New.
type Broker struct {
	mu        sync.Mutex
	exchanges map[string]broker.Exchange
	queues    map[string]broker.Queue
	bindings  map[bindingKey]broker.Binding
	policies  map[string]broker.Policy
	faults    map[Operation]error
	calls     map[Operation]int
}

type bindingKey struct{ source, queue, propertiesKey string }

var _ broker.Client = (*Broker)(nil)

// New returns an empty broker.
func New() *Broker {
	return &Broker{
		exchanges: map[string]broker.Exchange{},
		queues:    map[string]broker.Queue{},
		bindings:  map[bindingKey]broker.Binding{},
		policies:  map[string]broker.Policy{},
		faults:    map[Operation]error{},
		calls:     map[Operation]int{},
	}
}

// Factory returns a broker.Factory whose clients all reach b, whatever the connection.
func (b *Broker) Factory() broker.Factory {
	return func(broker.Connection) (broker.Client, error) { return b, nil }
}

// Fail makes every later call of op (AnyOperation: of every operation) fail with err, without
// effect, until Heal. Use Unreachable for a broker that is away, a *broker.BrokerError for an
// error answer.
func (b *Broker) Fail(op Operation, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults[op] = err
}

// Heal removes every injected fault.
func (b *Broker) Heal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.faults)
}

// Calls returns how often op was called, failed calls included.
func (b *Broker) Calls(op Operation) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[op]
}

// AddQueue puts q on the broker as is, as someone other than the operator would declare it
// (any type, durability or arguments).
func (b *Broker) AddQueue(q broker.Queue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queues[q.Name] = copyQueue(q)
}

// SetFigures sets a queue's message and consumer counts; Messages is ready plus unacknowledged.
// It reports whether the queue exists.
func (b *Broker) SetFigures(queue string, ready, unacknowledged, consumers int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[queue]
	if !ok {
		return false
	}
	q.MessagesReady, q.MessagesUnacknowledged, q.Consumers = ready, unacknowledged, consumers
	q.Messages = ready + unacknowledged
	b.queues[queue] = q
	return true
}

// State is a copy of everything a broker holds, comparable with reflect.DeepEqual (or
// gomega's Equal). Bindings are sorted by queue, source and routing key.
type State struct {
	Exchanges map[string]broker.Exchange
	Queues    map[string]broker.Queue
	Bindings  []broker.Binding
	Policies  map[string]broker.Policy
}

// State returns a copy of the broker's objects.
func (b *Broker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := State{
		Exchanges: maps.Clone(b.exchanges),
		Queues:    map[string]broker.Queue{},
		Bindings:  slices.Collect(maps.Values(b.bindings)),
		Policies:  map[string]broker.Policy{},
	}
	for name, q := range b.queues {
		s.Queues[name] = copyQueue(q)
	}
	for name, p := range b.policies {
		s.Policies[name] = copyPolicy(p)
	}
	sortBindings(s.Bindings)
	return s
}

// begin counts a call of op and returns its injected fault, if any. b.mu must be held.
func (b *Broker) begin(op Operation) error {
	b.calls[op]++
	if err, ok := b.faults[op]; ok {
		return err
	}
	return b.faults[AnyOperation]
}

// GetExchange implements broker.Client.
func (b *Broker) GetExchange(_ context.Context, name string) (*broker.Exchange, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(GetExchange); err != nil {
		return nil, err
	}
	ex, ok := b.exchanges[name]
	if !ok {
		return nil, broker.ErrNotFound
	}
	return &ex, nil
}

// DeclareExchange implements broker.Client: a durable exchange of kind.
func (b *Broker) DeclareExchange(_ context.Context, name, kind string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(DeclareExchange); err != nil {
		return err
	}
	if ex, ok := b.exchanges[name]; ok {
		if ex.Type != kind || !ex.Durable {
			return preconditionFailed(DeclareExchange, "inequivalent arg 'type' for exchange '%s': received '%s' but current is '%s'", name, kind, ex.Type)
		}
		return nil
	}
	b.exchanges[name] = broker.Exchange{Name: name, Type: kind, Durable: true}
	return nil
}

// DeleteExchange implements broker.Client; the bindings from the exchange go with it.
func (b *Broker) DeleteExchange(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(DeleteExchange); err != nil {
		return err
	}
	if _, ok := b.exchanges[name]; !ok {
		return broker.ErrNotFound
	}
	delete(b.exchanges, name)
	maps.DeleteFunc(b.bindings, func(k bindingKey, _ broker.Binding) bool { return k.source == name })
	return nil
}

// GetQueue implements broker.Client.
func (b *Broker) GetQueue(_ context.Context, name string) (*broker.Queue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(GetQueue); err != nil {
		return nil, err
	}
	q, ok := b.queues[name]
	if !ok {
		return nil, broker.ErrNotFound
	}
	q = copyQueue(q)
	return &q, nil
}

// ListQueues implements broker.Client, sorted by name.
func (b *Broker) ListQueues(_ context.Context) ([]broker.Queue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ListQueues); err != nil {
		return nil, err
	}
	queues := make([]broker.Queue, 0, len(b.queues))
	for _, name := range slices.Sorted(maps.Keys(b.queues)) {
		queues = append(queues, copyQueue(b.queues[name]))
	}
	return queues, nil
}

// DeclareQueue implements broker.Client: a durable queue whose only argument is x-queue-type.
// An existing queue must be exactly that.
func (b *Broker) DeclareQueue(_ context.Context, name, queueType string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(DeclareQueue); err != nil {
		return err
	}
	declared := broker.Queue{Name: name, Type: queueType, Durable: true, Arguments: map[string]any{"x-queue-type": queueType}}
	if q, ok := b.queues[name]; ok {
		if q.Durable != declared.Durable || !reflect.DeepEqual(q.Arguments, declared.Arguments) {
			return preconditionFailed(DeclareQueue, "inequivalent arguments for queue '%s': declared %v, current %v (durable %t)",
				name, declared.Arguments, q.Arguments, q.Durable)
		}
		return nil
	}
	b.queues[name] = declared
	return nil
}

// DeleteQueue implements broker.Client; the queue's bindings go with it.
func (b *Broker) DeleteQueue(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(DeleteQueue); err != nil {
		return err
	}
	if _, ok := b.queues[name]; !ok {
		return broker.ErrNotFound
	}
	delete(b.queues, name)
	maps.DeleteFunc(b.bindings, func(k bindingKey, _ broker.Binding) bool { return k.queue == name })
	return nil
}

// ListQueueBindings implements broker.Client: the implicit default-exchange binding first,
// then the others sorted by source and routing key.
func (b *Broker) ListQueueBindings(_ context.Context, queue string) ([]broker.Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ListQueueBindings); err != nil {
		return nil, err
	}
	if _, ok := b.queues[queue]; !ok {
		return nil, broker.ErrNotFound
	}
	out := []broker.Binding{{Source: "", Queue: queue, RoutingKey: queue, PropertiesKey: queue}}
	return append(out, b.bindingsWhere(func(k bindingKey) bool { return k.queue == queue })...), nil
}

// ListExchangeBindings implements broker.Client: the bindings from exchange to queues.
func (b *Broker) ListExchangeBindings(_ context.Context, exchange string) ([]broker.Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ListExchangeBindings); err != nil {
		return nil, err
	}
	if _, ok := b.exchanges[exchange]; !ok {
		return nil, broker.ErrNotFound
	}
	return b.bindingsWhere(func(k bindingKey) bool { return k.source == exchange }), nil
}

// Bind implements broker.Client. Exchange and queue must exist; binding twice is one binding.
func (b *Broker) Bind(_ context.Context, bd broker.Binding) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(Bind); err != nil {
		return err
	}
	_, exchangeExists := b.exchanges[bd.Source]
	_, queueExists := b.queues[bd.Queue]
	if !exchangeExists || !queueExists {
		return broker.ErrNotFound
	}
	bd.PropertiesKey = propertiesKey(bd.RoutingKey)
	b.bindings[bindingKey{bd.Source, bd.Queue, bd.PropertiesKey}] = bd
	return nil
}

// Unbind implements broker.Client: the binding named by source, queue and PropertiesKey.
func (b *Broker) Unbind(_ context.Context, bd broker.Binding) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(Unbind); err != nil {
		return err
	}
	key := bindingKey{bd.Source, bd.Queue, bd.PropertiesKey}
	if _, ok := b.bindings[key]; !ok {
		return broker.ErrNotFound
	}
	delete(b.bindings, key)
	return nil
}

// GetPolicy implements broker.Client.
func (b *Broker) GetPolicy(_ context.Context, name string) (*broker.Policy, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(GetPolicy); err != nil {
		return nil, err
	}
	p, ok := b.policies[name]
	if !ok {
		return nil, broker.ErrNotFound
	}
	p = copyPolicy(p)
	return &p, nil
}

// ListPolicies implements broker.Client, sorted by name.
func (b *Broker) ListPolicies(_ context.Context) ([]broker.Policy, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ListPolicies); err != nil {
		return nil, err
	}
	policies := make([]broker.Policy, 0, len(b.policies))
	for _, name := range slices.Sorted(maps.Keys(b.policies)) {
		policies = append(policies, copyPolicy(b.policies[name]))
	}
	return policies, nil
}

// PutPolicy implements broker.Client: it creates or replaces the policy. The definition is
// stored as the management API returns it, through JSON.
func (b *Broker) PutPolicy(_ context.Context, p broker.Policy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(PutPolicy); err != nil {
		return err
	}
	def, err := throughJSON(p.Definition)
	if err != nil {
		return &broker.BrokerError{Operation: string(PutPolicy), StatusCode: http.StatusBadRequest, Message: err.Error()}
	}
	p.Definition = def
	b.policies[p.Name] = p
	return nil
}

// DeletePolicy implements broker.Client.
func (b *Broker) DeletePolicy(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(DeletePolicy); err != nil {
		return err
	}
	if _, ok := b.policies[name]; !ok {
		return broker.ErrNotFound
	}
	delete(b.policies, name)
	return nil
}

// bindingsWhere returns the bindings whose key matches, sorted. b.mu must be held.
func (b *Broker) bindingsWhere(match func(bindingKey) bool) []broker.Binding {
	var out []broker.Binding
	for k, bd := range b.bindings {
		if match(k) {
			out = append(out, bd)
		}
	}
	sortBindings(out)
	return out
}

// propertiesKey is RabbitMQ's name of a binding without arguments: its routing key, or "~"
// when that is empty.
func propertiesKey(routingKey string) string {
	if routingKey == "" {
		return "~"
	}
	return routingKey
}

func preconditionFailed(op Operation, format string, args ...any) error {
	return &broker.BrokerError{Operation: string(op), StatusCode: http.StatusBadRequest,
		Message: "PRECONDITION_FAILED - " + fmt.Sprintf(format, args...)}
}

func sortBindings(bs []broker.Binding) {
	sort.Slice(bs, func(i, j int) bool {
		a, c := bs[i], bs[j]
		if a.Queue != c.Queue {
			return a.Queue < c.Queue
		}
		if a.Source != c.Source {
			return a.Source < c.Source
		}
		return a.RoutingKey < c.RoutingKey
	})
}

func copyQueue(q broker.Queue) broker.Queue {
	q.Arguments = maps.Clone(q.Arguments)
	return q
}

func copyPolicy(p broker.Policy) broker.Policy {
	p.Definition = maps.Clone(p.Definition)
	return p
}

func throughJSON(def map[string]any) (map[string]any, error) {
	raw, err := json.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("policy definition: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("policy definition: %w", err)
	}
	return out, nil
}

// ListExchanges implements broker.Client.
func (b *Broker) ListExchanges(_ context.Context) ([]broker.Exchange, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ListExchanges); err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Values(b.exchanges))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListBindings implements broker.Client, the implicit default-exchange bindings included.
func (b *Broker) ListBindings(_ context.Context) ([]broker.Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ListBindings); err != nil {
		return nil, err
	}
	out := b.bindingsWhere(func(bindingKey) bool { return true })
	for name := range b.queues {
		out = append(out, broker.Binding{Queue: name, RoutingKey: name, PropertiesKey: name})
	}
	sortBindings(out)
	return out, nil
}

// Declare implements broker.Client like RabbitMQ's definitions import: missing exchanges and
// queues are declared, existing ones are left as they are; a binding whose exchange or queue
// does not exist fails the request (400) after what came before it was declared.
func (b *Broker) Declare(_ context.Context, d broker.Declarations) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(Declare); err != nil {
		return err
	}
	for _, x := range d.Exchanges {
		if _, ok := b.exchanges[x.Name]; !ok {
			b.exchanges[x.Name] = broker.Exchange{Name: x.Name, Type: x.Type, Durable: true}
		}
	}
	for _, q := range d.Queues {
		if _, ok := b.queues[q.Name]; !ok {
			b.queues[q.Name] = broker.Queue{Name: q.Name, Type: q.Type, Durable: true, Arguments: map[string]any{"x-queue-type": q.Type}}
		}
	}
	for _, p := range d.Policies {
		def, err := throughJSON(p.Definition)
		if err != nil {
			return &broker.BrokerError{Operation: string(Declare), StatusCode: http.StatusBadRequest, Message: err.Error()}
		}
		p.Definition = def
		b.policies[p.Name] = p
	}
	for _, bd := range d.Bindings {
		_, exchangeExists := b.exchanges[bd.Source]
		_, queueExists := b.queues[bd.Queue]
		if !exchangeExists || !queueExists {
			return &broker.BrokerError{Operation: string(Declare), StatusCode: http.StatusBadRequest,
				Message: fmt.Sprintf("binding %s -> %s: no such exchange or queue", bd.Source, bd.Queue)}
		}
		bd.PropertiesKey = propertiesKey(bd.RoutingKey)
		b.bindings[bindingKey{bd.Source, bd.Queue, bd.PropertiesKey}] = bd
	}
	return nil
}
