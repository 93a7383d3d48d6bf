package controllers

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/internal/contract"
)

// Queue ownership is recorded on the broker, where every operator sharing it (other
// namespaces, other clusters, the next operator process) can see it: an EventStream owns its
// queue while its policy eventstream.<namespace>.<name>, whose pattern names exactly that
// queue, exists. A queue claimed by another stream's policy is left alone.

// policyPrefix starts the name of every policy the operator writes.
const policyPrefix = "eventstream."

// queueClaim is another EventStream's policy on a queue whose objects overlap this stream's.
type queueClaim struct {
	// Policy is the claiming policy's name.
	Policy string
	// Owner is the claiming EventStream as namespace/name.
	Owner string
	// Queue is the queue the claiming policy names.
	Queue string
}

// ownerOf returns the EventStream, as namespace/name, that an operator policy name records.
// Namespaces hold no dots, so the first dot after the prefix ends the namespace.
func ownerOf(policy string) (string, bool) {
	namespace, name, ok := strings.Cut(strings.TrimPrefix(policy, policyPrefix), ".")
	if !strings.HasPrefix(policy, policyPrefix) || !ok || namespace == "" || name == "" {
		return "", false
	}
	return namespace + "/" + name, true
}

// claimedQueue returns the queue an operator policy claims: the policy must carry the
// operator's name prefix and a pattern of the form ^<literal queue name>$ on queues, as
// desiredTopology writes it. Any other policy claims nothing.
func claimedQueue(p broker.Policy) (string, bool) {
	if _, ok := ownerOf(p.Name); !ok || p.ApplyTo != "queues" {
		return "", false
	}
	quoted, ok := strings.CutPrefix(p.Pattern, "^")
	if !ok {
		return "", false
	}
	if quoted, ok = strings.CutSuffix(quoted, "$"); !ok {
		return "", false
	}
	queue := unquoteMeta(quoted)
	if regexp.QuoteMeta(queue) != quoted {
		return "", false
	}
	return queue, true
}

// unquoteMeta reverses regexp.QuoteMeta: it drops the backslash before every character.
func unquoteMeta(s string) string {
	var b strings.Builder
	escaped := false
	for _, r := range s {
		if r == '\\' && !escaped {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	return b.String()
}

// overlappingQueues are the queue names whose stream would declare or delete one of this
// queue's objects: the queue itself, a stream whose dead-letter queue is this queue, and a
// stream whose queue is this queue's dead-letter queue.
func overlappingQueues(queue string) []string {
	names := []string{queue, contract.DeadLetterQueue(queue)}
	if base, ok := contract.QueueOfDeadLetterQueue(queue); ok {
		names = append(names, base)
	}
	return names
}

// otherClaims lists, sorted by policy name, the policies of other EventStreams that claim
// want's queue or an overlapping one. want.Policy.Name is this stream's own policy.
func otherClaims(policies []broker.Policy, want topology) []queueClaim {
	overlapping := overlappingQueues(want.Queue)
	var claims []queueClaim
	for _, p := range policies {
		if p.Name == want.Policy.Name {
			continue
		}
		queue, ok := claimedQueue(p)
		if !ok || !slices.Contains(overlapping, queue) {
			continue
		}
		owner, _ := ownerOf(p.Name)
		claims = append(claims, queueClaim{Policy: p.Name, Owner: owner, Queue: queue})
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].Policy < claims[j].Policy })
	return claims
}

// queueOwner decides who owns want's queue. It returns nil when this stream does (nobody
// else claims it), otherwise the owning claim. A stream that already holds its policy keeps
// the queue against later claims unless two claims were made at once: then the policy name
// that sorts first wins, so that every operator decides the same.
func queueOwner(policies []broker.Policy, want topology) *queueClaim {
	claims := otherClaims(policies, want)
	if len(claims) == 0 {
		return nil
	}
	if holdsClaim(policies, want) && want.Policy.Name < claims[0].Policy {
		return nil
	}
	return &claims[0]
}

// holdsClaim reports whether this stream's own policy claims its current queue.
func holdsClaim(policies []broker.Policy, want topology) bool {
	for _, p := range policies {
		if p.Name == want.Policy.Name {
			queue, ok := claimedQueue(p)
			return ok && queue == want.Queue
		}
	}
	return false
}

// claimMessage explains a claimed queue for the QueueClaimed condition.
func claimMessage(want topology, c *queueClaim) string {
	what := "queue " + want.Queue
	if c.Queue != want.Queue {
		what = fmt.Sprintf("queue %s overlaps queue %s (one is the other's dead-letter queue), which", want.Queue, c.Queue)
	}
	return fmt.Sprintf("%s is claimed by EventStream %s (policy %s); this stream changes nothing on it. "+
		"Choose another spec.queue.name, or delete EventStream %s and this stream takes the queue over; "+
		"if %s no longer exists (deleted with deletionPolicy Retain), delete policy %s to release the queue",
		what, c.Owner, c.Policy, c.Owner, c.Owner, c.Policy)
}

// policyConflicts are the policies that are not the operator's and match the stream's queue:
// RabbitMQ applies only the one policy of highest priority to a queue. Overriding ones have
// a priority at least the operator's (they apply instead of it, or may, on a tie); displaced
// ones have a lower priority and no longer apply to the queue. Each list is sorted by
// priority, highest first, then name.
type policyConflicts struct {
	Overriding []broker.Policy
	Displaced  []broker.Policy
}

func (c policyConflicts) empty() bool { return len(c.Overriding) == 0 && len(c.Displaced) == 0 }

// foreignPolicies finds the policies that conflict with want.Policy on want.Queue. Operator
// policies (this stream's, and claims, which queueOwner handles) are not foreign. A pattern
// that Go's regexp cannot compile (RabbitMQ uses PCRE) is skipped.
func foreignPolicies(policies []broker.Policy, want topology) policyConflicts {
	var c policyConflicts
	for _, p := range policies {
		if p.Name == want.Policy.Name {
			continue
		}
		if _, ok := claimedQueue(p); ok {
			continue
		}
		if !appliesToQueueType(p.ApplyTo, want.QueueType) {
			continue
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil || !re.MatchString(want.Queue) {
			continue
		}
		if p.Priority >= want.Policy.Priority {
			c.Overriding = append(c.Overriding, p)
		} else {
			c.Displaced = append(c.Displaced, p)
		}
	}
	for _, list := range [][]broker.Policy{c.Overriding, c.Displaced} {
		sort.Slice(list, func(i, j int) bool {
			if list[i].Priority != list[j].Priority {
				return list[i].Priority > list[j].Priority
			}
			return list[i].Name < list[j].Name
		})
	}
	return c
}

// appliesToQueueType reports whether a policy's apply-to covers a queue of the given type.
func appliesToQueueType(applyTo, queueType string) bool {
	switch applyTo {
	case "all", "queues":
		return true
	case "classic_queues":
		return queueType == string(esv1.QueueTypeClassic)
	case "quorum_queues":
		return queueType == string(esv1.QueueTypeQuorum)
	case "streams":
		return queueType == string(esv1.QueueTypeStream)
	}
	return false
}

// describePolicies renders policies for messages: name (priority N, pattern P), …
func describePolicies(ps []broker.Policy) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s (priority %d, pattern %s)", p.Name, p.Priority, p.Pattern))
	}
	return strings.Join(parts, ", ")
}
