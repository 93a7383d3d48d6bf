// Command operator is the eventstream-operator manager: it reconciles EventStreams into
// RabbitMQ topology and SSE bridge workloads.
package main

import (
	"flag"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers"
)

// defaultBridgeImage is the published image of this release; the Helm chart passes the
// operator's own image instead.
const defaultBridgeImage = "ghcr.io/eventstream-operator/eventstream-operator:v0.1.0"

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	var (
		metricsAddr       string
		probeAddr         string
		leaderElect       bool
		leaderElectionNS  string
		watchNamespaces   string
		resyncPeriod      time.Duration
		statusInterval    time.Duration
		deletionTimeout   time.Duration
		brokerQPS         float64
		brokerBurst       int
		bridgeImage       string
		concurrentStreams int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles")
	flag.StringVar(&leaderElectionNS, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to watch; empty watches all")
	flag.DurationVar(&resyncPeriod, "resync-period", 5*time.Minute, "how often each stream is checked against the broker when nothing changed (drift detection)")
	flag.DurationVar(&statusInterval, "status-interval", 30*time.Second, "how often queue and bridge figures are refreshed in status")
	flag.DurationVar(&deletionTimeout, "deletion-timeout", 2*time.Minute, "how long deletion retries an unreachable broker before it leaves the topology behind")
	flag.Float64Var(&brokerQPS, "broker-qps", 50, "management API requests per second, across all streams")
	flag.IntVar(&brokerBurst, "broker-burst", 100, "management API request burst")
	flag.StringVar(&bridgeImage, "bridge-image", envOr("BRIDGE_IMAGE", defaultBridgeImage), "image of the bridge pods unless a stream names its own; the Helm chart sets the operator's own image")
	flag.IntVar(&concurrentStreams, "max-concurrent-reconciles", 4, "EventStreams reconciled in parallel")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	setupLog := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(esv1.AddToScheme(scheme))

	// Only the objects the operator made are cached (Secrets cannot be selected: users make
	// them), which bounds the operator's memory in clusters with many pods.
	managed := labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: "eventstream-operator"})
	cacheOpts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   {Label: managed},
		&appsv1.Deployment{}:            {Label: managed},
		&corev1.Service{}:               {Label: managed},
		&corev1.ServiceAccount{}:        {Label: managed},
		&policyv1.PodDisruptionBudget{}: {Label: managed},
	}}
	if watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(watchNamespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "eventstream-operator.sse.eventstream.dev",
		LeaderElectionNamespace: leaderElectionNS,
		// The manager exits right after Start returns, so a successor need not wait for the
		// lease to expire.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		setupLog.Error(err, "create manager")
		os.Exit(1)
	}
	reconciler := &controllers.EventStreamReconciler{
		Client:                  mgr.GetClient(),
		ResyncPeriod:            resyncPeriod,
		DeletionTimeout:         deletionTimeout,
		BrokerQPS:               brokerQPS,
		BrokerBurst:             brokerBurst,
		MaxConcurrentReconciles: concurrentStreams,
		StatusInterval:          statusInterval,
		BridgeImage:             bridgeImage,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "set up EventStream controller")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	setupLog.Info("starting manager", "watchNamespaces", watchNamespaces, "resyncPeriod", resyncPeriod)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "run manager")
		os.Exit(1)
	}
}
