package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers/broker"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
	"github.com/eventstream-operator/eventstream-operator/test/rabbitmqtest"
)

// The suite runs the real manager against a real API server (envtest) and the private
// RabbitMQ node; specs check the broker through its own management API.
var (
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client // uncached, for assertions
	rmq       *rabbitmqtest.Node
	mgmt      *rabbithole.Client
	calls     *callCounter
	cancelMgr context.CancelFunc
	mgrDone   chan struct{}
)

const (
	testResync          = 2 * time.Second
	testDeletionTimeout = 8 * time.Second
	testBridgeImage     = "registry.example.com/eventstream-operator:test"
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "controllers (envtest + RabbitMQ)")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	rmq = rabbitmqtest.Shared(GinkgoT())

	assets, err := kubetest.AssetsDir()
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{kubetest.CRDDir()},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(esv1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgmt, err = rabbithole.NewClient(rmq.ManagementURI, rmq.Username, rmq.Password)
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	Expect(err).NotTo(HaveOccurred())
	calls = &callCounter{counts: map[string]int{}}
	factory := broker.NewManagementFactory(200, 200, nil)
	reconciler := &EventStreamReconciler{
		Client:          mgr.GetClient(),
		ResyncPeriod:    testResync,
		StatusInterval:  time.Second,
		DeletionTimeout: testDeletionTimeout,
		BridgeImage:     testBridgeImage,
		NewBrokerClient: func(c broker.Connection) (broker.Client, error) {
			inner, err := factory.New(c)
			return &countingClient{Client: inner, calls: calls}, err
		},
	}
	Expect(reconciler.SetupWithManager(mgr)).To(Succeed())

	var ctx context.Context
	ctx, cancelMgr = context.WithCancel(context.Background())
	mgrDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(mgrDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancelMgr != nil {
		cancelMgr()
		Eventually(mgrDone, 30*time.Second).Should(BeClosed())
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// newNamespace creates a namespace of the spec's own and returns its name.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "evs-test-"}}
	Expect(k8sClient.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// uniqueName returns a broker-safe name no other spec uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, rand.Uint64())
}

// createConnectionSecret creates the connection Secret for node in namespace.
func createConnectionSecret(namespace, name string, node *rabbitmqtest.Node) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		StringData: map[string]string{"uri": node.URI, "managementURI": node.ManagementURI},
	}
	Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
}

// callCounter counts broker calls per queue, to prove the absence of hot loops.
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *callCounter) add(queue string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[queue]++
}

func (c *callCounter) get(queue string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[queue]
}

type countingClient struct {
	broker.Client
	calls *callCounter
}

func (c *countingClient) GetQueue(ctx context.Context, name string) (*broker.Queue, error) {
	c.calls.add(name)
	return c.Client.GetQueue(ctx, name)
}
