package controllers

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// policyPriority puts the operator's policy above policies at the default priority 0.
const policyPriority = 10

// topology is what the broker must hold for one EventStream. It is derived from the spec
// alone, so that it can be compared with what the broker reports.
type topology struct {
	Exchange  string
	Queue     string
	QueueType string
	// DeadLetterExchange and DeadLetterQueue are empty when dead-lettering is off.
	DeadLetterExchange string
	DeadLetterQueue    string
	// BridgeQueues are queues the bridges declare for themselves and the operator deletes
	// with the stream: a stream queue's dead-letter progress
	// (contract.DeadLetterProgressQueue).
	BridgeQueues []string
	Policy       broker.Policy
	// Bindings of the queue to Exchange, sorted by routing key.
	Bindings []broker.Binding
}

// desiredTopology translates a spec into broker objects. Names: the dead-letter exchange is
// <queue>.dlx (fanout, so routing keys are kept) and the dead-letter queue <queue>.dlq; the
// policy is eventstream.<namespace>.<name> and matches exactly the queue.
func desiredTopology(es *esv1.EventStream) topology {
	spec := es.Spec
	t := topology{
		Exchange:  string(spec.Exchange.Name),
		Queue:     string(spec.Queue.Name),
		QueueType: string(spec.Queue.Type),
	}
	if t.Exchange == "" {
		t.Exchange = contract.DefaultExchange
	}
	if t.Queue == "" {
		t.Queue = contract.DefaultQueue
	}
	if t.QueueType == "" {
		t.QueueType = contract.DefaultQueueType
	}
	if deadLetterEnabled(spec.Queue) {
		t.DeadLetterExchange = contract.DeadLetterExchange(t.Queue)
		t.DeadLetterQueue = contract.DeadLetterQueue(t.Queue)
		if t.QueueType == string(esv1.QueueTypeStream) {
			t.BridgeQueues = []string{contract.DeadLetterProgressQueue(t.Queue)}
		}
	}
	t.Policy = broker.Policy{
		Name:       policyName(es.Namespace, es.Name),
		Pattern:    "^" + regexp.QuoteMeta(t.Queue) + "$",
		ApplyTo:    "queues",
		Priority:   policyPriority,
		Definition: policyDefinition(spec.Queue, t),
	}
	keys := make([]string, 0, len(spec.BindingKeys))
	for _, k := range spec.BindingKeys {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		t.Bindings = append(t.Bindings, broker.Binding{Source: t.Exchange, Queue: t.Queue, RoutingKey: k})
	}
	return t
}

func deadLetterEnabled(q esv1.QueueSpec) bool {
	if q.DeadLetter.Enabled == nil {
		return contract.DefaultDeadLetter
	}
	return *q.DeadLetter.Enabled
}

func policyName(namespace, name string) string {
	return "eventstream." + namespace + "." + name
}

// policyDefinition holds what queue arguments would otherwise carry, so it can change
// without re-creating the queue. Classic and quorum queues get message-ttl (milliseconds),
// dead-letter-exchange and max-length/max-length-bytes; streams get max-age (whole seconds,
// at least 1) and max-length-bytes, and no dead-letter-exchange (streams do not dead-letter;
// the bridge republishes malformed messages to the dead-letter exchange itself).
func policyDefinition(q esv1.QueueSpec, t topology) map[string]any {
	ttl := contract.DefaultMessageTTL // the API server defaults it too
	if q.MessageTTL != nil {
		ttl = q.MessageTTL.Duration
	}
	def := map[string]any{}
	if t.QueueType == string(esv1.QueueTypeStream) {
		seconds := int64(math.Ceil(ttl.Seconds()))
		if seconds < 1 {
			seconds = 1
		}
		def["max-age"] = fmt.Sprintf("%ds", seconds)
	} else {
		ms := ttl.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		def["message-ttl"] = ms
		if t.DeadLetterExchange != "" {
			def["dead-letter-exchange"] = t.DeadLetterExchange
		}
		if q.MaxLength != nil {
			def["max-length"] = *q.MaxLength
		}
	}
	if q.MaxLengthBytes != nil {
		def["max-length-bytes"] = *q.MaxLengthBytes
	}
	return def
}

// policyArgumentKeys are queue arguments that would override or fight the operator's policy.
var policyArgumentKeys = []string{
	"x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
	"x-max-length-bytes", "x-max-age", "x-overflow", "x-expires",
}

// queueConflicts lists, sorted, how an existing queue differs from the declared one in ways
// the operator cannot repair without deleting it: its type, its durability, and arguments
// that would override the policy. Empty means no conflict.
func queueConflicts(observed *broker.Queue, want topology) []string {
	var conflicts []string
	observedType := observed.Type
	if t, ok := observed.Arguments["x-queue-type"].(string); ok && t != "" {
		observedType = t
	}
	if observedType == "" {
		observedType = string(esv1.QueueTypeClassic)
	}
	if observedType != want.QueueType {
		conflicts = append(conflicts, fmt.Sprintf("x-queue-type (is %s, declared %s)", observedType, want.QueueType))
	}
	if !observed.Durable {
		conflicts = append(conflicts, "durable (is false, declared true)")
	}
	for _, k := range policyArgumentKeys {
		if v, ok := observed.Arguments[k]; ok {
			conflicts = append(conflicts, fmt.Sprintf("%s (set to %v on the queue; the operator sets it by policy)", k, v))
		}
	}
	sort.Strings(conflicts)
	return conflicts
}

// bindingChanges returns the bindings to add and the ones to remove so that the queue's
// bindings equal want. The default exchange's implicit binding is never touched; bindings
// from any other exchange that the spec does not declare are removed.
func bindingChanges(observed []broker.Binding, want []broker.Binding) (add, remove []broker.Binding) {
	key := func(b broker.Binding) string { return b.Source + "\x00" + b.RoutingKey }
	have := map[string]bool{}
	for _, b := range observed {
		if b.Source == "" {
			continue
		}
		have[key(b)] = true
	}
	wanted := map[string]bool{}
	for _, b := range want {
		wanted[key(b)] = true
		if !have[key(b)] {
			add = append(add, b)
		}
	}
	for _, b := range observed {
		if b.Source != "" && !wanted[key(b)] {
			remove = append(remove, b)
		}
	}
	return add, remove
}

// sameDefinition compares policy definitions as JSON values: the broker reports numbers as
// float64 where the operator writes int64.
func sameDefinition(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || !sameJSONValue(av, bv) {
			return false
		}
	}
	return true
}

func sameJSONValue(a, b any) bool {
	af, aNum := number(a)
	bf, bNum := number(b)
	if aNum || bNum {
		return aNum && bNum && af == bf
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// describeBindings renders bindings for events and messages.
func describeBindings(bs []broker.Binding) string {
	keys := make([]string, 0, len(bs))
	for _, b := range bs {
		keys = append(keys, b.Source+"→"+b.RoutingKey)
	}
	return strings.Join(keys, ", ")
}
