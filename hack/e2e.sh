#!/usr/bin/env bash
# The end-to-end tests (`make test-e2e`): brings up the local cluster (hack/cluster.sh) and a
# RabbitMQ node of this run's own, builds the image and pushes it to the cluster's registry
# under a tag of its own, builds eventctl for the host, installs Debian's Prometheus (the suite
# runs it on the host against the cluster) and what the examples' specs run
# on the host (Node.js and examples/nextjs's node_modules with hack/node.sh, Debian's Celery
# and aio-pika with hack/python.sh), then runs the Ginkgo suite in test/e2e (build tag e2e). Everything it started is torn down on exit, also on failure or
# Ctrl-C.
#
# The RabbitMQ node is dedicated to this run (own directory, node name and ports), because
# the suite stops and starts it; it never touches the node of `make test` (hack/rabbitmq.sh
# defaults). Pods reach it as the Service rabbitmq the suite creates in the stream's namespace
# (an EndpointSlice to the host's address in the cluster and the node's ports).
#
# Settings (environment):
#   E2E_KEEP=1             leave the cluster and the node running after the run (debugging)
#   EVENTSTREAM_SCREENSHOT_DIR=docs/images   where the suite saves its screenshot of
#                          Prometheus's graph page (default test/e2e/artifacts, ignored by git)
#   E2E_GINKGO_FLAGS=...   extra flags for the suite, e.g. "-ginkgo.focus=helm"
#   E2E_TIMEOUT=20m        go test -timeout
#   E2E_RABBITMQ_AMQP_PORT (20772), E2E_RABBITMQ_MGMT_PORT (21772): the dedicated node's ports
# A cluster that was already running before the run is left running (only what this script
# started is stopped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== e2e: %s (%s)\n' "$*" "$(date +%T)" >&2; }
started=$SECONDS

# The dedicated RabbitMQ node: hack/rabbitmq.sh with its own directory, name and ports.
amqp_port=${E2E_RABBITMQ_AMQP_PORT:-20772}
mgmt_port=${E2E_RABBITMQ_MGMT_PORT:-21772}
export RABBITMQ_TEST_DIR=$root/bin/rabbitmq-e2e
export RABBITMQ_TEST_NODENAME=eventstream-e2e@localhost
export RABBITMQ_TEST_AMQP_PORT=$amqp_port
export RABBITMQ_TEST_MGMT_PORT=$mgmt_port
export RABBITMQ_TEST_STREAM_PORT=${E2E_RABBITMQ_STREAM_PORT:-22652}
export RABBITMQ_TEST_DIST_PORT=${E2E_RABBITMQ_DIST_PORT:-23772}
export RABBITMQ_TEST_EPMD_PORT=${E2E_RABBITMQ_EPMD_PORT:-24469}

cluster_was_running=false
if hack/cluster.sh status >/dev/null 2>&1; then cluster_was_running=true; fi

cleanup() {
  local rc=$?
  if [ "${E2E_KEEP:-}" = 1 ]; then
    step "E2E_KEEP=1: leaving the cluster and the RabbitMQ node running"
    echo "  eval \"\$(hack/cluster.sh env)\"; hack/cluster.sh down; RABBITMQ_TEST_DIR=$RABBITMQ_TEST_DIR RABBITMQ_TEST_EPMD_PORT=$RABBITMQ_TEST_EPMD_PORT hack/rabbitmq.sh stop" >&2
    exit "$rc"
  fi
  step "teardown"
  hack/rabbitmq.sh stop || rc=1
  if ! $cluster_was_running; then hack/cluster.sh down || rc=1; fi
  step "finished in $((SECONDS - started))s, exit $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "local cluster"
hack/cluster.sh up
eval "$(hack/cluster.sh env)"

step "dedicated RabbitMQ node (amqp :$amqp_port, management :$mgmt_port)"
# A fresh node every run: queues and messages of an earlier (failed) run would skew counts.
hack/rabbitmq.sh stop
rm -rf "$RABBITMQ_TEST_DIR"
hack/rabbitmq.sh start

step "tools: helm, chromium, prometheus, node (examples/nextjs), python (examples/python)"
HELM=$(hack/tool.sh helm)
CHROMIUM=$(hack/chromium.sh)
# Debian's Prometheus: the suite runs it on the host, scraping the cluster's pods.
PROMETHEUS=$(hack/prometheus.sh)
export HELM CHROMIUM PROMETHEUS
# Cached by lockfile: the suite's `next build` copies examples/nextjs and links these.
hack/node.sh >/dev/null
hack/python.sh >/dev/null
# The examples' helpers (test/apptest) fail instead of skipping when something is missing.
export EVENTSTREAM_REQUIRE_INTEGRATION=1

step "image"
# A tag of this run's own: pods pull with IfNotPresent, so a re-pushed tag would not be pulled.
tag=e2e-$(date +%s)-$RANDOM
E2E_IMAGE=$(hack/image.sh "$EVENTSTREAM_CLUSTER_REGISTRY/eventstream-operator:$tag")
# hack/image.sh built eventctl for linux/$(go env GOARCH) into dist/: the host runs the same.
EVENTCTL=$root/dist/eventctl
export E2E_IMAGE EVENTCTL

export E2E_RABBITMQ_URI=amqp://guest:guest@127.0.0.1:$amqp_port/
export E2E_RABBITMQ_MANAGEMENT_URI=http://127.0.0.1:$mgmt_port
export E2E_RABBITMQ_POD_URI=amqp://guest:guest@$EVENTSTREAM_CLUSTER_HOST_IP:$amqp_port/
export E2E_RABBITMQ_POD_MANAGEMENT_URI=http://$EVENTSTREAM_CLUSTER_HOST_IP:$mgmt_port

step "suite (image $E2E_IMAGE)"
ginkgo_flags=(-ginkgo.v)
[ -t 1 ] || ginkgo_flags+=(-ginkgo.no-color)
# shellcheck disable=SC2206 # E2E_GINKGO_FLAGS is a list of flags
ginkgo_flags+=(${E2E_GINKGO_FLAGS:-})
go test -tags e2e -count=1 -timeout "${E2E_TIMEOUT:-20m}" ./test/e2e/ -v -args "${ginkgo_flags[@]}"
