#!/usr/bin/env bash
# The README's test command (`make test`): installs and starts everything the tests need on a
# fresh machine with only Go, then runs lint and every unit and integration test.
#
#   - kube-apiserver, etcd (built from Go modules, cached by version) for envtest
#   - a private RabbitMQ node (Debian's rabbitmq-server, own ports and dirs)
#   - Debian's chromium for the browser tests, helm for the chart tests, promtool (Debian's
#     prometheus package) for the alert rules
#   - Debian's python3-celery, python3-aio-pika, python3-kombu and Node.js (with the cached
#     node_modules of examples/nextjs) for the examples' tests (test/apps)
#
# Integration tests fail instead of skipping here (EVENTSTREAM_REQUIRE_INTEGRATION=1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

step "Kubernetes binaries for envtest"
hack/build-k8s.sh kube-apiserver etcd kubectl

step "private RabbitMQ node"
started_rabbitmq=false
if ! hack/rabbitmq.sh status >/dev/null 2>&1; then
  hack/rabbitmq.sh start
  started_rabbitmq=true
fi
cleanup() { if $started_rabbitmq; then hack/rabbitmq.sh stop || true; fi; }
trap cleanup EXIT

step "pinned tools (helm)"
HELM=$(hack/tool.sh helm)
export HELM

step "promtool for the alert-rule tests (Debian's prometheus package)"
hack/prometheus.sh >/dev/null

step "Chromium for the browser tests"
CHROMIUM=$(hack/chromium.sh)
export CHROMIUM

step "Python libraries and Node.js for the examples"
hack/python.sh >/dev/null
hack/node.sh >/dev/null

eval "$(hack/rabbitmq.sh env)"
export KUBEBUILDER_ASSETS=$root/bin/k8s
export EVENTSTREAM_REQUIRE_INTEGRATION=1

step "lint, and generated files up to date (make verify: CRD, RBAC, deepcopy, go.mod)"
make --no-print-directory lint verify

step "unit and integration tests"
# The chaos suite runs on its own afterwards: it measures recovery times, which other test
# packages running beside it on a 2-core machine would stretch.
go test -count=1 -timeout 40m ${GO_TEST_FLAGS:-} $(go list ./... | grep -v '/test/chaos$')

step "chaos suite, short profile (test/chaos; make test-chaos runs the full one)"
go test -count=1 -timeout 20m ${GO_TEST_FLAGS:-} ./test/chaos/
step "done"
