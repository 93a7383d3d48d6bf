// Command operator is the eventstream-operator manager: it reconciles EventStreams into
// RabbitMQ topology and SSE bridge workloads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/bridge/tracing"
	"github.com/eventstream-operator/eventstream-operator/controllers"
	"github.com/eventstream-operator/eventstream-operator/internal/cli"
	"github.com/eventstream-operator/eventstream-operator/internal/version"
)

// defaultBridgeImage is the published image of this build's version (the image tag, injected
// with --version); the Helm chart and config/default pass the
// operator's own image instead.
var defaultBridgeImage = "ghcr.io/eventstream-operator/eventstream-operator:" + version.Version

// tracingFlushTimeout bounds sending the last spans at exit.
const tracingFlushTimeout = 5 * time.Second

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// options are the operator's command-line flags.
type options struct {
	metricsAddr       string
	probeAddr         string
	leaderElect       bool
	leaderElectionNS  string
	watchNamespaces   []string
	resyncPeriod      time.Duration
	statusInterval    time.Duration
	deletionTimeout   time.Duration
	brokerQPS         float64
	brokerBurst       int
	bridgeImage       string
	bridgePullSecrets []string
	concurrentStreams int
	zap               zap.Options
}

// parseOptions parses args into flag.CommandLine (which also holds controller-runtime's
// --kubeconfig) and checks every value; see cli.Parse for -h and --version.
func parseOptions(args []string) (options, error) {
	o := options{zap: zap.Options{Development: false}}
	var watchNamespaces, bridgePullSecrets string
	fs := flag.CommandLine
	fs.Init("operator", flag.ContinueOnError)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint; 0 disables it")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	fs.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to watch; empty watches all")
	fs.DurationVar(&o.resyncPeriod, "resync-period", 5*time.Minute, "how often each stream is checked against the broker when nothing changed (drift detection)")
	fs.DurationVar(&o.statusInterval, "status-interval", 30*time.Second, "how often queue and bridge figures are refreshed in status")
	fs.DurationVar(&o.deletionTimeout, "deletion-timeout", 2*time.Minute, "how long deletion retries an unreachable broker before it leaves the topology behind")
	fs.Float64Var(&o.brokerQPS, "broker-qps", 50, "management API requests per second, across all streams")
	fs.IntVar(&o.brokerBurst, "broker-burst", 100, "management API request burst")
	fs.StringVar(&o.bridgeImage, "bridge-image", envOr("BRIDGE_IMAGE", defaultBridgeImage), "image of the bridge pods unless a stream names its own; the Helm chart sets the operator's own image")
	fs.StringVar(&bridgePullSecrets, "bridge-image-pull-secrets", "", "comma-separated Secrets, in each stream's namespace, put on the bridge ServiceAccount's imagePullSecrets")
	fs.IntVar(&o.concurrentStreams, "max-concurrent-reconciles", 4, "EventStreams reconciled in parallel")
	o.zap.BindFlags(fs)
	if err := cli.Parse(fs, args, os.Stdout, true); err != nil {
		return o, err
	}
	if err := cli.NoArgs(fs); err != nil {
		return o, err
	}
	o.watchNamespaces = splitList(watchNamespaces)
	o.bridgePullSecrets = splitList(bridgePullSecrets)
	return o, cli.Usage(o.validate())
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(value string) []string {
	var out []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// validate names every flag value the operator cannot run with.
func (o options) validate() error {
	var errs []error
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"--resync-period", o.resyncPeriod}, {"--status-interval", o.statusInterval}, {"--deletion-timeout", o.deletionTimeout}} {
		if d.value <= 0 {
			errs = append(errs, fmt.Errorf("%s %v must be positive", d.flag, d.value))
		}
	}
	if !(o.brokerQPS > 0) || math.IsInf(o.brokerQPS, 0) {
		errs = append(errs, fmt.Errorf("--broker-qps %v must be a positive number", o.brokerQPS))
	}
	if o.brokerBurst < 1 {
		errs = append(errs, fmt.Errorf("--broker-burst %d must be at least 1", o.brokerBurst))
	}
	if o.concurrentStreams < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-reconciles %d must be at least 1", o.concurrentStreams))
	}
	if strings.TrimSpace(o.bridgeImage) == "" {
		errs = append(errs, errors.New("--bridge-image must not be empty"))
	}
	for _, ns := range o.watchNamespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--watch-namespaces: %q is not a namespace name: %s", ns, strings.Join(msgs, "; ")))
		}
	}
	for _, name := range o.bridgePullSecrets {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--bridge-image-pull-secrets: %q is not a Secret name: %s", name, strings.Join(msgs, "; ")))
		}
	}
	if o.leaderElectionNS != "" {
		if msgs := validation.IsDNS1123Label(o.leaderElectionNS); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--leader-election-namespace %q is not a namespace name: %s", o.leaderElectionNS, strings.Join(msgs, "; ")))
		}
	}
	return errors.Join(errs...)
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		os.Exit(cli.Exit("operator", err, os.Stderr))
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	setupLog := ctrl.Log.WithName("setup")

	// Tracing is off unless the OTEL_* environment names a collector (docs/tracing.md); a
	// bad setting is logged and the operator runs without it.
	shutdownTracing, err := tracing.Setup(context.Background(), "eventstream-operator")
	if err != nil {
		setupLog.Error(err, "tracing disabled")
	} else if tracing.Enabled() {
		setupLog.Info("tracing on: exporting spans over OTLP", "protocol", tracing.Protocol())
	}

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
	if len(o.watchNamespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.watchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "eventstream-operator.sse.eventstream.dev",
		LeaderElectionNamespace: o.leaderElectionNS,
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
		ResyncPeriod:            o.resyncPeriod,
		DeletionTimeout:         o.deletionTimeout,
		BrokerQPS:               o.brokerQPS,
		BrokerBurst:             o.brokerBurst,
		MaxConcurrentReconciles: o.concurrentStreams,
		StatusInterval:          o.statusInterval,
		BridgeImage:             o.bridgeImage,
		BridgeImagePullSecrets:  o.bridgePullSecrets,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "set up EventStream controller")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	setupLog.Info("starting manager", "version", version.Version, "watchNamespaces", o.watchNamespaces, "resyncPeriod", o.resyncPeriod)
	runErr := mgr.Start(ctrl.SetupSignalHandler())
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), tracingFlushTimeout)
	if err := shutdownTracing(flushCtx); err != nil {
		setupLog.Error(err, "flush traces")
	}
	cancelFlush()
	if runErr != nil {
		setupLog.Error(runErr, "run manager")
		os.Exit(1)
	}
}
