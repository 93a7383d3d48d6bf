#!/usr/bin/env bash
# `make bench`: the performance harness (docs/performance.md). Builds the bridge, operator and
# harness, starts the private RabbitMQ node when it is not running (and stops it afterwards),
# builds the envtest binaries for the operator scenario, runs every scenario and rewrites the
# generated section of docs/performance.md.
#
# Arguments are passed to the harness, e.g.
#   hack/bench.sh --scenarios idle,fanout --conns 2000
#   hack/bench.sh --operator-quiet 5m          # the issue's full five quiet minutes
# It never fails because the machine was slow: only a broken harness fails it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

step "build bridge, operator and harness"
out=$root/bin/bench
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -o "$out/" ./cmd/bridge ./cmd/operator ./test/bench/cmd/bench

step "Kubernetes binaries for envtest (operator scenario)"
hack/build-k8s.sh kube-apiserver etcd kubectl
export KUBEBUILDER_ASSETS=$root/bin/k8s

step "private RabbitMQ node"
started_rabbitmq=false
if ! hack/rabbitmq.sh status >/dev/null 2>&1; then
  hack/rabbitmq.sh start
  started_rabbitmq=true
fi
cleanup() { if $started_rabbitmq; then hack/rabbitmq.sh stop || true; fi; }
trap cleanup EXIT
eval "$(hack/rabbitmq.sh env)"

step "scenarios"
"$out/bench" --bridge "$out/bridge" --operator "$out/operator" --crd-dir config/crd/bases --out docs/performance.md "$@"
step "done: docs/performance.md"
