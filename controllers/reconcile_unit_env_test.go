package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker/brokertest"
)

// The unit layer: the reconciler called directly, against controller-runtime's fake client
// and brokertest's in-memory broker, with a fake clock and no jitter. It proves the
// reconciler's decisions (conditions, requeues, what it asks of the broker) in milliseconds;
// the envtest + RabbitMQ suite (suite_test.go) proves them against the real parts.

const (
	unitNamespace       = "team-a"
	unitSecret          = "rabbitmq"
	unitResync          = 5 * time.Minute
	unitStatusInterval  = 30 * time.Second
	unitDeletionTimeout = 2 * time.Minute
)

// unitEnv is one test's fake API server, broker, clock and reconciler.
type unitEnv struct {
	t          *testing.T
	ctx        context.Context
	client     client.Client
	broker     *brokertest.Broker
	clock      *clocktesting.FakeClock
	events     *recordedEvents
	reconciler *EventStreamReconciler
}

func newUnitEnv(t *testing.T) *unitEnv {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := esv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: unitNamespace, Name: unitSecret},
		Data:       map[string][]byte{secretKeyURI: []byte("amqp://guest:guest@rabbitmq:5672/")},
	}
	k8s := fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&esv1.EventStream{}).
		WithObjects(secret).
		Build()
	env := &unitEnv{
		t:      t,
		ctx:    context.Background(),
		client: k8s,
		broker: brokertest.New(),
		clock:  clocktesting.NewFakeClock(time.Now()),
		events: &recordedEvents{},
	}
	env.reconciler = &EventStreamReconciler{
		Client:          k8s,
		Recorder:        env.events,
		Clock:           env.clock,
		NewBrokerClient: env.broker.Factory(),
		ResyncPeriod:    unitResync,
		DeletionTimeout: unitDeletionTimeout,
		Jitter:          func(d time.Duration) time.Duration { return d },
		BridgeImage:     testBridgeImage,
		StatusInterval:  unitStatusInterval,
		Scraper:         unreachableScraper{},
		listings:        newBrokerListings(env.clock, unitStatusInterval/2),
	}
	return env
}

// createStream creates an EventStream named name on queue (exchange <queue>.topic, binding
// key "jobs.#", dead-lettering on), changed by mutate. The fake API server sets neither UID
// nor generation: they are set here.
func (e *unitEnv) createStream(name, queue string, mutate func(*esv1.EventStream)) *esv1.EventStream {
	e.t.Helper()
	es := &esv1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: unitNamespace, Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec: esv1.EventStreamSpec{
			RabbitMQ:    esv1.RabbitMQConnection{ConnectionSecret: corev1.LocalObjectReference{Name: unitSecret}},
			Exchange:    esv1.ExchangeSpec{Name: esv1.BrokerObjectName(queue + ".topic")},
			Queue:       esv1.QueueSpec{Name: esv1.BrokerObjectName(queue)},
			BindingKeys: []esv1.BindingKey{"jobs.#"},
			Bridge:      esv1.BridgeSpec{Auth: esv1.BridgeAuthSpec{Mode: esv1.AuthModeNone}},
		},
	}
	if mutate != nil {
		mutate(es)
	}
	if err := e.client.Create(e.ctx, es); err != nil {
		e.t.Fatalf("create EventStream %s: %v", name, err)
	}
	return es
}

// reconcile runs one reconcile of es and returns the stream as stored after it (nil when it
// is gone) and the reconcile's outcome.
func (e *unitEnv) reconcile(es *esv1.EventStream) (*esv1.EventStream, ctrl.Result, error) {
	e.t.Helper()
	res, err := e.reconciler.Reconcile(e.ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(es)})
	return e.stored(es), res, err
}

// mustReconcile reconciles es, fails the test on an error, and returns the stored stream.
func (e *unitEnv) mustReconcile(es *esv1.EventStream) *esv1.EventStream {
	e.t.Helper()
	got, _, err := e.reconcile(es)
	if err != nil {
		e.t.Fatalf("reconcile %s: %v", es.Name, err)
	}
	return got
}

// stored returns es as the fake API server holds it, or nil when it is gone.
func (e *unitEnv) stored(es *esv1.EventStream) *esv1.EventStream {
	e.t.Helper()
	got := &esv1.EventStream{}
	err := e.client.Get(e.ctx, client.ObjectKeyFromObject(es), got)
	if client.IgnoreNotFound(err) != nil {
		e.t.Fatalf("get EventStream %s: %v", es.Name, err)
	}
	if err != nil {
		return nil
	}
	return got
}

// delete asks the fake API server to delete es; its finalizer keeps it, with a deletion
// timestamp of the real clock's now.
func (e *unitEnv) delete(es *esv1.EventStream) {
	e.t.Helper()
	if err := e.client.Delete(e.ctx, es); err != nil {
		e.t.Fatalf("delete EventStream %s: %v", es.Name, err)
	}
}

// recordedEvents is an events.EventRecorder that keeps "Type Reason note" lines.
type recordedEvents struct {
	mu    sync.Mutex
	lines []string
}

func (r *recordedEvents) Eventf(_ runtime.Object, _ runtime.Object, eventType, reason, _, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, eventType+" "+reason+" "+fmt.Sprintf(note, args...))
}

// has reports whether an event of that type and reason was recorded.
func (r *recordedEvents) has(eventType, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.HasPrefix(l, eventType+" "+reason+" ") {
			return true
		}
	}
	return false
}

func (r *recordedEvents) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// unreachableScraper fails every scrape; the fake API server runs no pods to scrape anyway.
type unreachableScraper struct{}

func (unreachableScraper) Scrape(context.Context, string) (BridgeFigures, error) {
	return BridgeFigures{}, fmt.Errorf("no pods in unit tests")
}
