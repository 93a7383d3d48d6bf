package controllers

import (
	"context"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
)

// streamTopology is the desired topology of EventStream namespace/name on queue.
func streamTopology(namespace, name, queue string) topology {
	return desiredTopology(&esv1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       esv1.EventStreamSpec{Queue: esv1.QueueSpec{Name: esv1.BrokerObjectName(queue)}},
	})
}

func TestOwnerOf(t *testing.T) {
	tests := []struct {
		policy, owner string
		ok            bool
	}{
		{"eventstream.team-a.stream", "team-a/stream", true},
		{"eventstream.team-a.jobs.v2", "team-a/jobs.v2", true},
		{"eventstream.team-a", "", false},
		{"eventstream..stream", "", false},
		{"ha-all", "", false},
	}
	for _, tt := range tests {
		owner, ok := ownerOf(tt.policy)
		if owner != tt.owner || ok != tt.ok {
			t.Errorf("ownerOf(%q) = %q, %v; want %q, %v", tt.policy, owner, ok, tt.owner, tt.ok)
		}
	}
}

func TestClaimedQueue(t *testing.T) {
	tests := []struct {
		name   string
		policy broker.Policy
		queue  string
		ok     bool
	}{
		{"as the operator writes it", streamTopology("a", "s", "events.sse").Policy, "events.sse", true},
		{"queue name with a dash and colon", broker.Policy{Name: "eventstream.a.s", Pattern: `^jobs-1:x$`, ApplyTo: "queues"}, "jobs-1:x", true},
		{"not the operator's name", broker.Policy{Name: "mine", Pattern: `^events\.sse$`, ApplyTo: "queues"}, "", false},
		{"not anchored", broker.Policy{Name: "eventstream.a.s", Pattern: `events\.sse`, ApplyTo: "queues"}, "", false},
		{"not a literal", broker.Policy{Name: "eventstream.a.s", Pattern: `^events.sse$`, ApplyTo: "queues"}, "", false},
		{"a wildcard", broker.Policy{Name: "eventstream.a.s", Pattern: `^.*$`, ApplyTo: "queues"}, "", false},
		{"on exchanges", broker.Policy{Name: "eventstream.a.s", Pattern: `^events\.sse$`, ApplyTo: "exchanges"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queue, ok := claimedQueue(tt.policy)
			if queue != tt.queue || ok != tt.ok {
				t.Errorf("claimedQueue(%+v) = %q, %v; want %q, %v", tt.policy, queue, ok, tt.queue, tt.ok)
			}
		})
	}
}

func TestQueueOwner(t *testing.T) {
	// "eventstream.a.stream" sorts before "eventstream.b.stream".
	mine := streamTopology("b", "stream", "events.sse")
	policyOf := func(namespace, queue string) broker.Policy {
		return streamTopology(namespace, "stream", queue).Policy
	}
	admin := broker.Policy{Name: "ha-all", Pattern: ".*", ApplyTo: "all"}
	tests := []struct {
		name     string
		want     topology
		policies []broker.Policy
		owner    string // namespace/name, empty when this stream owns the queue
		claimed  string // the queue the owning policy names
	}{
		{name: "no policies: a new queue is ours", want: mine},
		{name: "only our own policy", want: mine, policies: []broker.Policy{mine.Policy, admin}},
		{name: "another stream's policy on another queue", want: mine, policies: []broker.Policy{policyOf("a", "other")}},
		{
			name: "another stream owns the queue", want: mine,
			policies: []broker.Policy{admin, policyOf("a", "events.sse")},
			owner:    "a/stream", claimed: "events.sse",
		},
		{
			name: "another stream owns it and our policy still names our old queue", want: mine,
			policies: []broker.Policy{policyOf("c", "events.sse"), policyOf("b", "old")},
			owner:    "c/stream", claimed: "events.sse",
		},
		{
			name: "both claimed at once: the first policy name wins", want: mine,
			policies: []broker.Policy{mine.Policy, policyOf("a", "events.sse")},
			owner:    "a/stream", claimed: "events.sse",
		},
		{
			name: "both claimed at once: ours sorts first", want: streamTopology("a", "stream", "events.sse"),
			policies: []broker.Policy{policyOf("b", "events.sse"), policyOf("a", "events.sse")},
		},
		{
			name: "our queue is another stream's dead-letter queue", want: streamTopology("b", "stream", "jobs.dlq"),
			policies: []broker.Policy{policyOf("a", "jobs")},
			owner:    "a/stream", claimed: "jobs",
		},
		{
			name: "our dead-letter queue is another stream's queue", want: streamTopology("b", "stream", "jobs"),
			policies: []broker.Policy{policyOf("a", "jobs.dlq")},
			owner:    "a/stream", claimed: "jobs.dlq",
		},
		{
			name: "a lookalike name that is not an operator claim", want: mine,
			policies: []broker.Policy{{Name: "eventstream.a.stream", Pattern: "events", ApplyTo: "queues"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := queueOwner(tt.policies, tt.want)
			switch {
			case tt.owner == "" && got != nil:
				t.Fatalf("queueOwner = %+v, want ours", *got)
			case tt.owner != "" && got == nil:
				t.Fatalf("queueOwner = ours, want %s", tt.owner)
			case got != nil && (got.Owner != tt.owner || got.Queue != tt.claimed || got.Policy != "eventstream."+strings.ReplaceAll(tt.owner, "/", ".")):
				t.Fatalf("queueOwner = %+v, want owner %s on queue %s", *got, tt.owner, tt.claimed)
			}
		})
	}
}

func TestForeignPolicies(t *testing.T) {
	want := streamTopology("b", "stream", "events.sse")
	other := streamTopology("a", "stream", "events.sse").Policy
	p := func(name, pattern, applyTo string, priority int) broker.Policy {
		return broker.Policy{Name: name, Pattern: pattern, ApplyTo: applyTo, Priority: priority}
	}
	tests := []struct {
		name       string
		want       topology
		policies   []broker.Policy
		overriding []string
		displaced  []string
	}{
		{name: "none", want: want, policies: []broker.Policy{want.Policy, other}},
		{
			name: "higher, equal and lower priorities, sorted", want: want,
			policies: []broker.Policy{
				p("low", "^events", "queues", 0), p("tie", `\.sse$`, "all", 10), p("high", ".*", "queues", 20),
				p("negative", "sse", "queues", -5),
			},
			overriding: []string{"high", "tie"},
			displaced:  []string{"low", "negative"},
		},
		{
			name: "patterns that do not match, or apply to exchanges or another queue type", want: want,
			policies: []broker.Policy{
				p("other-queue", "^jobs$", "queues", 20), p("exchanges", ".*", "exchanges", 20),
				p("quorum-only", ".*", "quorum_queues", 20), p("streams-only", ".*", "streams", 20),
			},
		},
		{
			name: "applies to the queue's own type", want: want,
			policies:  []broker.Policy{p("classic-only", ".*", "classic_queues", 0)},
			displaced: []string{"classic-only"},
		},
		{
			name: "a pattern Go cannot compile is skipped", want: want,
			policies: []broker.Policy{p("lookahead", "^(?!jobs).*", "queues", 20)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := foreignPolicies(tt.policies, tt.want)
			if names := policyNames(got.Overriding); !reflect.DeepEqual(names, tt.overriding) {
				t.Errorf("overriding = %v, want %v", names, tt.overriding)
			}
			if names := policyNames(got.Displaced); !reflect.DeepEqual(names, tt.displaced) {
				t.Errorf("displaced = %v, want %v", names, tt.displaced)
			}
		})
	}
}

func policyNames(ps []broker.Policy) []string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

func TestSummarizeReady(t *testing.T) {
	cond := func(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: "m"}
	}
	tests := []struct {
		name       string
		conditions []metav1.Condition
		status     metav1.ConditionStatus
		reason     string
	}{
		{"all true", []metav1.Condition{
			cond(esv1.ConditionTopologyReady, metav1.ConditionTrue, esv1.ReasonTopologyReconciled),
			cond(esv1.ConditionBridgeReady, metav1.ConditionTrue, esv1.ReasonBridgeAvailable),
		}, metav1.ConditionTrue, esv1.ReasonReady},
		{"topology failing: its reason", []metav1.Condition{
			cond(esv1.ConditionTopologyReady, metav1.ConditionFalse, esv1.ReasonQueueClaimed),
		}, metav1.ConditionFalse, esv1.ReasonQueueClaimed},
		{"both failing: the topology's reason first", []metav1.Condition{
			cond(esv1.ConditionBridgeReady, metav1.ConditionFalse, esv1.ReasonBridgeUnavailable),
			cond(esv1.ConditionTopologyReady, metav1.ConditionFalse, esv1.ReasonPolicyConflict),
		}, metav1.ConditionFalse, esv1.ReasonPolicyConflict},
		{"bridge failing", []metav1.Condition{
			cond(esv1.ConditionTopologyReady, metav1.ConditionTrue, esv1.ReasonForeignPolicyDisplaced),
			cond(esv1.ConditionBridgeReady, metav1.ConditionFalse, esv1.ReasonBridgeProgressing),
		}, metav1.ConditionFalse, esv1.ReasonBridgeProgressing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := &esv1.EventStream{Status: esv1.EventStreamStatus{Conditions: tt.conditions}}
			summarizeReady(es)
			c := conditionOf(es, esv1.ConditionReady)
			if c.Status != tt.status || c.Reason != tt.reason {
				t.Errorf("Ready = %s/%s, want %s/%s", c.Status, c.Reason, tt.status, tt.reason)
			}
		})
	}
}

// policyBroker holds policies; the rest of broker.Client is not used.
type policyBroker struct {
	broker.Client
	policies []broker.Policy
	deleted  []string
}

func (b *policyBroker) ListPolicies(context.Context) ([]broker.Policy, error) { return b.policies, nil }

func (b *policyBroker) DeletePolicy(_ context.Context, name string) error {
	b.deleted = append(b.deleted, name)
	return nil
}

func TestClaimQueueWithdrawsOnlyACompetingClaim(t *testing.T) {
	want := streamTopology("b", "stream", "events.sse")
	owner := streamTopology("a", "stream", "events.sse").Policy
	tests := []struct {
		name    string
		mine    *broker.Policy
		deleted []string
	}{
		{name: "no policy of ours"},
		{name: "ours on the same queue, claimed at the same moment", mine: &want.Policy, deleted: []string{want.Policy.Name}},
		{name: "ours on the previous queue stays", mine: ptr(streamTopology("b", "stream", "old").Policy)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bc := &policyBroker{policies: []broker.Policy{owner}}
			if tt.mine != nil {
				bc.policies = append(bc.policies, *tt.mine)
			}
			r := &EventStreamReconciler{}
			err := r.claimQueue(context.Background(), bc, want, bc.policies, &topologyChanges{})
			se := asStepError(err, "")
			if se.reason != esv1.ReasonQueueClaimed || se.kind != stalled || !strings.Contains(se.message, "EventStream a/stream") {
				t.Fatalf("claimQueue error = %v, want stalled QueueClaimed naming a/stream", err)
			}
			if !reflect.DeepEqual(bc.deleted, tt.deleted) {
				t.Errorf("deleted policies %v, want %v", bc.deleted, tt.deleted)
			}
		})
	}
}
