package controllers

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker/brokertest"
)

// The decisions of the status refresh: between a stream's changes, a reconcile (the status
// interval's requeue, or a watch event of a child whose state did not change) reads the
// figures and writes nothing unless they changed; it applies children only when what they
// are built from or the children themselves changed.

// apiWrites counts the requests of the reconciler that can change something on the API
// server, by kind of request.
type apiWrites struct {
	mu     sync.Mutex
	counts map[string]int
}

func (w *apiWrites) add(kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[kind]++
}

func (w *apiWrites) snapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

// countWrites makes the reconciler's client count its writes: apply (server-side apply),
// create, patch, update, delete and status (status patches and updates).
func countWrites(env *unitEnv) *apiWrites {
	w := &apiWrites{counts: map[string]int{}}
	env.reconciler.Client = interceptor.NewClient(env.client.(client.WithWatch), interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			w.add("apply")
			return c.Apply(ctx, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			w.add("create")
			return c.Create(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			w.add("patch")
			return c.Patch(ctx, obj, patch, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.add("update")
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.add("delete")
			return c.Delete(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			w.add(sub)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			w.add(sub)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	return w
}

// brokerCalls sums the broker calls of every operation.
func brokerCalls(b *brokertest.Broker) map[brokertest.Operation]int {
	out := map[brokertest.Operation]int{}
	for _, op := range []brokertest.Operation{
		brokertest.GetExchange, brokertest.ListExchanges, brokertest.DeclareExchange, brokertest.DeleteExchange,
		brokertest.GetQueue, brokertest.ListQueues, brokertest.DeclareQueue, brokertest.DeleteQueue,
		brokertest.ListQueueBindings, brokertest.ListExchangeBindings, brokertest.ListBindings, brokertest.Bind, brokertest.Unbind,
		brokertest.GetPolicy, brokertest.ListPolicies, brokertest.PutPolicy, brokertest.DeletePolicy, brokertest.Declare,
	} {
		if n := b.Calls(op); n > 0 {
			out[op] = n
		}
	}
	return out
}

// TestUnitStatusRefreshWritesNothingForAnIdleStream: once a stream is reconciled, each status
// refresh of an idle stream (figures unchanged) until the resync makes no Kubernetes write
// (no apply of the children, no PDB delete, no status patch) and one queue listing.
func TestUnitStatusRefreshWritesNothingForAnIdleStream(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	writes := countWrites(env)
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)
	first := writes.snapshot()
	g.Expect(first["apply"]).To(BeNumerically(">=", 2), "the first reconcile applies the children")
	g.Expect(first["status"]).To(Equal(1))

	for i := 1; i*int(unitStatusInterval) < int(unitResync); i++ {
		calls := brokerCalls(env.broker)
		env.clock.Step(unitStatusInterval)
		env.mustReconcile(es)
		g.Expect(writes.snapshot()).To(Equal(first), "refresh %d wrote to the API server", i)
		want := calls
		want[brokertest.ListQueues]++
		g.Expect(brokerCalls(env.broker)).To(Equal(want), "refresh %d: one queue listing and nothing else", i)
	}
}

// TestUnitStatusRefreshWritesChangedFigures: a refresh that finds other queue figures writes
// status once, and applies nothing.
func TestUnitStatusRefreshWritesChangedFigures(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	writes := countWrites(env)
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)
	before := writes.snapshot()

	g.Expect(env.broker.SetFigures("orders", 12, 0, 1)).To(BeTrue())
	env.clock.Step(unitStatusInterval)
	got := env.mustReconcile(es)

	g.Expect(got.Status.Queue.MessagesReady).To(Equal(int64(12)))
	after := writes.snapshot()
	g.Expect(after["status"]).To(Equal(before["status"] + 1))
	g.Expect(after["apply"]).To(Equal(before["apply"]), "figures do not re-apply the children")
}

// TestUnitWorkloadAppliedWhenItsInputsChange: the children are applied again when the spec
// changes, when a child was edited by someone else (its generation changed), and when one
// was deleted; not otherwise.
func TestUnitWorkloadAppliedWhenItsInputsChange(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	writes := countWrites(env)
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)
	applies := func() int { return writes.snapshot()["apply"] }
	n := applies()

	env.mustReconcile(es)
	g.Expect(applies()).To(Equal(n), "nothing changed")

	// A hand edit of the Deployment: the fake API server bumps no generation, so the edit
	// sets one as the API server would.
	var dep appsv1.Deployment
	g.Expect(env.client.Get(env.ctx, client.ObjectKey{Namespace: unitNamespace, Name: bridgeName(es)}, &dep)).To(Succeed())
	dep.Spec.Replicas = ptr(int32(3))
	dep.Generation++
	g.Expect(env.client.Update(env.ctx, &dep)).To(Succeed())
	env.mustReconcile(es)
	g.Expect(applies()).To(BeNumerically(">", n), "an edited child is applied again")
	g.Expect(env.client.Get(env.ctx, client.ObjectKeyFromObject(&dep), &dep)).To(Succeed())
	g.Expect(*dep.Spec.Replicas).To(Equal(int32(1)), "the edit is reverted")
	n = applies()

	g.Expect(env.client.Delete(env.ctx, &dep)).To(Succeed())
	env.mustReconcile(es)
	g.Expect(applies()).To(BeNumerically(">", n), "a deleted child is applied again")
	g.Expect(env.client.Get(env.ctx, client.ObjectKeyFromObject(&dep), &dep)).To(Succeed())
	n = applies()

	stored := env.stored(es)
	stored.Spec.Bridge.Heartbeat = &metav1.Duration{Duration: 20 * time.Second}
	stored.Generation++
	g.Expect(env.client.Update(env.ctx, stored)).To(Succeed())
	env.mustReconcile(stored)
	g.Expect(applies()).To(BeNumerically(">", n), "a spec change is applied")
}

// TestUnitResyncIsJittered: a stream's topology is verified again when its own jittered
// resync is due, not at the same moment as every other stream's.
func TestUnitResyncIsJittered(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	env.reconciler.Jitter = func(d time.Duration) time.Duration { return d + d/10 }
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)
	verifications := func() int { return env.broker.Calls(brokertest.ListPolicies) }
	n := verifications()

	env.clock.Step(unitResync)
	env.mustReconcile(es)
	g.Expect(verifications()).To(Equal(n), "not yet due at the unjittered period")

	env.clock.Step(unitResync / 10)
	env.mustReconcile(es)
	g.Expect(verifications()).To(Equal(n+1), "verified at the jittered period")
}

// racingClaim is a broker client on which another stream's policy claims the queue at the
// moment of the first declaration, after the stream listed the policies.
type racingClaim struct {
	broker.Client
	claim broker.Policy
	once  sync.Once
}

func (c *racingClaim) Declare(ctx context.Context, d broker.Declarations) error {
	var err error
	c.once.Do(func() { err = c.Client.PutPolicy(ctx, c.claim) })
	if err != nil {
		return err
	}
	return c.Client.Declare(ctx, d)
}

// TestUnitClaimRaceBindsNothing: a stream that loses a race for its queue (another claim
// appeared between its listing and its declaration) binds nothing to the queue, and
// withdraws its policy.
func TestUnitClaimRaceBindsNothing(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	claim := streamTopology("a", "first", "shared").Policy
	env.reconciler.NewBrokerClient = func(broker.Connection) (broker.Client, error) {
		return &racingClaim{Client: env.broker, claim: claim}, nil
	}
	es := env.createStream("second", "shared", nil)

	got, _, err := env.reconcile(es)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conditionOf(got, esv1.ConditionTopologyReady).Reason).To(Equal(esv1.ReasonQueueClaimed))
	g.Expect(bindingsOf(env.broker.State())).To(BeEmpty(), "nothing bound to a queue another stream claimed")
	g.Expect(env.broker.State().Policies).To(HaveLen(1), "its own policy withdrawn, the other's kept")
	g.Expect(env.broker.State().Policies).To(HaveKey(claim.Name))

	// The next stream on the queue sees the winner, not the withdrawn claim.
	third := env.createStream("third", "shared", nil)
	got, _, err = env.reconcile(third)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conditionOf(got, esv1.ConditionTopologyReady)).To(And(
		HaveField("Reason", esv1.ReasonQueueClaimed), HaveField("Message", ContainSubstring("EventStream a/first"))))
}

// TestUnitWorkloadNotAppliedAgainForALaggingCache: a reconcile right after the apply, whose
// cache has not seen the children yet, asks the API server and applies nothing again (no
// second BridgeCreated Event, no Service create that would conflict).
func TestUnitWorkloadNotAppliedAgainForALaggingCache(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	writes := countWrites(env)
	counting := env.reconciler.Client
	lagging := false
	env.reconciler.APIReader = env.client
	env.reconciler.Client = interceptor.NewClient(counting.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			switch obj.(type) {
			case *appsv1.Deployment, *corev1.Service, *corev1.ServiceAccount, *policyv1.PodDisruptionBudget:
				if lagging {
					return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
				}
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)
	before := writes.snapshot()

	lagging = true
	env.mustReconcile(es)

	after := writes.snapshot()
	for _, kind := range []string{"apply", "create", "patch", "update", "delete"} {
		g.Expect(after[kind]).To(Equal(before[kind]), "%s requests", kind)
	}
	g.Expect(strings.Count(env.events.String(), "BridgeCreated")).To(Equal(1), "events:\n%s", env.events)
}

// TestUnitOneTopologyEventPerReconcile: the changes of one reconcile are one Event (the Events
// library makes Events of one object, reason and action a series and updates it again six
// minutes later, a write in an otherwise quiet period), with a note the API server accepts.
func TestUnitOneTopologyEventPerReconcile(t *testing.T) {
	g := NewWithT(t)
	env := newUnitEnv(t)
	es := env.createStream("orders", "orders", nil)
	env.mustReconcile(es)

	g.Expect(strings.Count(env.events.String(), "TopologyChanged")).To(Equal(1), "events:\n%s", env.events)
	g.Expect(env.events.String()).To(And(ContainSubstring("declared topic exchange orders.topic"),
		ContainSubstring("created policy eventstream.team-a.orders"), ContainSubstring("bound queue orders: ")))

	long := &topologyChanges{}
	for i := 0; i < 100; i++ {
		long.add("bound queue é%d: orders.topic with %q", i, "jobs.#")
	}
	note := long.note()
	g.Expect(len(note)).To(BeNumerically("<=", maxEventNote))
	g.Expect(note).To(HaveSuffix("…"))
	g.Expect(utf8.ValidString(note)).To(BeTrue())
}
