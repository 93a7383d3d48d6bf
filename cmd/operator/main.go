// Command operator is the eventstream-operator manager: it reconciles EventStreams into
// RabbitMQ topology and SSE bridge workloads.
package main

import (
	"flag"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/controllers"
)

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
	flag.Float64Var(&brokerQPS, "broker-qps", 20, "management API requests per second, across all streams")
	flag.IntVar(&brokerBurst, "broker-burst", 40, "management API request burst")
	flag.StringVar(&bridgeImage, "bridge-image", os.Getenv("BRIDGE_IMAGE"), "image of the bridge pods unless a stream names its own (default: the operator's image, from BRIDGE_IMAGE)")
	flag.IntVar(&concurrentStreams, "max-concurrent-reconciles", 4, "EventStreams reconciled in parallel")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	setupLog := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(esv1.AddToScheme(scheme))

	cacheOpts := cache.Options{}
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
	}
	_ = statusInterval
	_ = bridgeImage
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
