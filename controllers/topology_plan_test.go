package controllers

import (
	"reflect"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

func TestDesiredTopology(t *testing.T) {
	off := false
	tests := []struct {
		name           string
		spec           esv1.EventStreamSpec
		wantDLX        string
		wantPattern    string
		wantDefinition map[string]any
		wantBindings   []string
	}{
		{
			name:           "defaults",
			spec:           esv1.EventStreamSpec{BindingKeys: []esv1.BindingKey{"team.*.job.*.status"}},
			wantDLX:        "events.sse.dlx",
			wantPattern:    `^events\.sse$`,
			wantDefinition: map[string]any{"message-ttl": int64(600000), "dead-letter-exchange": "events.sse.dlx"},
			wantBindings:   []string{"team.*.job.*.status"},
		},
		{
			name: "classic with limits, keys sorted and deduplicated",
			spec: esv1.EventStreamSpec{
				Queue: esv1.QueueSpec{Name: "jobs", MessageTTL: &metav1.Duration{Duration: 90 * time.Second},
					MaxLength: ptr(int64(1000)), MaxLengthBytes: ptr(int64(1 << 20))},
				BindingKeys: []esv1.BindingKey{"b.#", "a.*", "b.#"},
			},
			wantDLX:     "jobs.dlx",
			wantPattern: `^jobs$`,
			wantDefinition: map[string]any{"message-ttl": int64(90000), "dead-letter-exchange": "jobs.dlx",
				"max-length": int64(1000), "max-length-bytes": int64(1 << 20)},
			wantBindings: []string{"a.*", "b.#"},
		},
		{
			name: "dead-lettering off",
			spec: esv1.EventStreamSpec{
				Queue:       esv1.QueueSpec{Name: "q", Type: esv1.QueueTypeQuorum, DeadLetter: esv1.DeadLetterSpec{Enabled: &off}},
				BindingKeys: []esv1.BindingKey{"#"},
			},
			wantPattern:    `^q$`,
			wantDefinition: map[string]any{"message-ttl": int64(600000)},
			wantBindings:   []string{"#"},
		},
		{
			name: "stream: max-age in whole seconds, rounded up, no dead-letter-exchange in the policy",
			spec: esv1.EventStreamSpec{
				Queue: esv1.QueueSpec{Name: "s", Type: esv1.QueueTypeStream,
					MessageTTL: &metav1.Duration{Duration: 1500 * time.Millisecond}, MaxLengthBytes: ptr(int64(5e9))},
				BindingKeys: []esv1.BindingKey{"#"},
			},
			wantDLX:        "s.dlx",
			wantPattern:    `^s$`,
			wantDefinition: map[string]any{"max-age": "2s", "max-length-bytes": int64(5e9)},
			wantBindings:   []string{"#"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := &esv1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "n"}, Spec: tt.spec}
			got := desiredTopology(es)
			if got.DeadLetterExchange != tt.wantDLX {
				t.Errorf("dead-letter exchange = %q, want %q", got.DeadLetterExchange, tt.wantDLX)
			}
			if got.Policy.Name != "eventstream.ns.n" || got.Policy.Pattern != tt.wantPattern || got.Policy.ApplyTo != "queues" {
				t.Errorf("policy = %+v", got.Policy)
			}
			if !reflect.DeepEqual(got.Policy.Definition, tt.wantDefinition) {
				t.Errorf("definition = %v, want %v", got.Policy.Definition, tt.wantDefinition)
			}
			var keys []string
			for _, b := range got.Bindings {
				if b.Source != got.Exchange || b.Queue != got.Queue {
					t.Errorf("binding %+v not from %s to %s", b, got.Exchange, got.Queue)
				}
				keys = append(keys, b.RoutingKey)
			}
			if !reflect.DeepEqual(keys, tt.wantBindings) {
				t.Errorf("binding keys = %v, want %v", keys, tt.wantBindings)
			}
		})
	}
}

func TestQueueConflicts(t *testing.T) {
	want := topology{Queue: "q", QueueType: "classic"}
	tests := []struct {
		name     string
		observed broker.Queue
		want     []string
	}{
		{"matching", broker.Queue{Type: "classic", Durable: true, Arguments: map[string]any{"x-queue-type": "classic"}}, nil},
		{"classic without x-queue-type", broker.Queue{Durable: true}, nil},
		{"other type", broker.Queue{Type: "quorum", Durable: true}, []string{"x-queue-type (is quorum, declared classic)"}},
		{"not durable", broker.Queue{Type: "classic"}, []string{"durable (is false, declared true)"}},
		{"policy keys as arguments", broker.Queue{Type: "classic", Durable: true, Arguments: map[string]any{"x-message-ttl": 5, "x-max-length": 9}},
			[]string{"x-max-length (set to 9 on the queue; the operator sets it by policy)", "x-message-ttl (set to 5 on the queue; the operator sets it by policy)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queueConflicts(&tt.observed, want); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("conflicts = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBindingChanges(t *testing.T) {
	b := func(src, key string) broker.Binding { return broker.Binding{Source: src, Queue: "q", RoutingKey: key} }
	observed := []broker.Binding{b("", "q"), b("ex", "a.*"), b("ex", "old"), b("other", "x")}
	want := []broker.Binding{b("ex", "a.*"), b("ex", "new")}
	add, remove := bindingChanges(observed, want)
	if !reflect.DeepEqual(add, []broker.Binding{b("ex", "new")}) {
		t.Errorf("add = %v", add)
	}
	if !reflect.DeepEqual(remove, []broker.Binding{b("ex", "old"), b("other", "x")}) {
		t.Errorf("remove = %v (the default exchange's binding must never be removed)", remove)
	}
}

func TestSameDefinition(t *testing.T) {
	ours := map[string]any{"message-ttl": int64(600000), "dead-letter-exchange": "q.dlx"}
	if !sameDefinition(ours, map[string]any{"message-ttl": float64(600000), "dead-letter-exchange": "q.dlx"}) {
		t.Error("numbers read back as float64 must compare equal")
	}
	if sameDefinition(ours, map[string]any{"message-ttl": float64(1), "dead-letter-exchange": "q.dlx"}) {
		t.Error("different TTL compared equal")
	}
	if sameDefinition(ours, map[string]any{"message-ttl": "600000", "dead-letter-exchange": "q.dlx"}) {
		t.Error("a string must not equal a number")
	}
	if sameDefinition(ours, map[string]any{"message-ttl": float64(600000)}) {
		t.Error("a missing key compared equal")
	}
}

// TestBridgeQueuesAreTheBridgesNames: the operator deletes the queue a stream bridge keeps its
// dead-letter progress in, by the name the bridge gives it.
func TestBridgeQueuesAreTheBridgesNames(t *testing.T) {
	es := &esv1.EventStream{Spec: esv1.EventStreamSpec{Queue: esv1.QueueSpec{Name: "jobs", Type: esv1.QueueTypeStream}}}
	got := desiredTopology(es).BridgeQueues
	if want := []string{contract.DeadLetterProgressQueue("jobs")}; !slices.Equal(got, want) {
		t.Errorf("bridge queues %v, want %v", got, want)
	}
	es.Spec.Queue.Type = esv1.QueueTypeClassic
	if got := desiredTopology(es).BridgeQueues; len(got) != 0 {
		t.Errorf("a classic queue's bridge keeps no queue, got %v", got)
	}
}
