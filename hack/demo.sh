#!/usr/bin/env bash
# The one-command demo (`make demo`): a local single-node cluster and a RabbitMQ node, the
# operator installed with Helm from a freshly built image, the sample EventStream applied,
# job-status events published a few per second, the examples' stack on this machine (the
# Next.js page of examples/nextjs served by `next start` against the bridge Service, a Celery
# worker of examples/python running a job for team 42 again and again), `kubectl get
# eventstreams`, and the events of one tenant streamed in the terminal through the bridge
# Service. Ctrl-C (or `make demo-down` from another shell) removes everything the demo started.
#
# Usage: hack/demo.sh [up|down]       (default up)
# Settings (environment):
#   DEMO_SECONDS=N   run N seconds, then clean up and exit 0 (non-interactive use, CI)
#   DEMO_RATE=3      events per second of the tenant shown (a second tenant publishes 1/s)
#   DEMO_PORT=28080  local port of `kubectl port-forward` to the bridge (for a browser)
#   DEMO_WEB_PORT=28081  local port of the Next.js page (`next start` on 127.0.0.1)
# Needs root (the cluster: containerd, network namespaces, iptables). What the demo started
# is recorded in bin/demo/; a cluster or RabbitMQ node that already ran is left running.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

state=$root/bin/demo
system_ns=eventstream-system
release=eventstream-operator
ns=eventstream-demo
stream="job-status"   # the EventStream of config/samples/eventstream_classic.yaml
tenant=42
other_tenant=43
rate=${DEMO_RATE:-3}
port=${DEMO_PORT:-28080}
web_port=${DEMO_WEB_PORT:-28081}
celery_job=celery     # the job id the Celery worker runs for team $tenant, again and again
celery_queue=eventstream-demo.celery
seconds=${DEMO_SECONDS:-0}

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
log() { echo "demo.sh: $*" >&2; }

# background NAME CMD...: starts CMD in a session of its own (its pid is the process group's
# id), output to bin/demo/NAME.log, and records the pid so that down stops exactly that group.
background() {
  local name=$1
  shift
  setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
  echo "$! $name" >>"$state/pids"
}

# publish_jobs EVENTCTL TEAM RATE: one job after another for TEAM, each going from 0 to 100
# percent in 30 events at RATE events per second. Runs in its own bash (see background).
publish_jobs() {
  local eventctl=$1 team=$2 rate=$3 job=1
  while :; do
    RABBITMQ_URL=$RABBITMQ_TEST_URI "$eventctl" publish --team "$team" --job "$job" \
      --status running --count 30 --rate "$rate" || sleep 1
    job=$((job + 1))
  done
}

# build_nextjs DIR BRIDGE_URL: examples/nextjs copied to DIR, its node_modules from hack/node.sh
# (cached by lockfile), `next build` with BRIDGE_URL compiled into the rewrite. Runs in its own
# bash (see background) in the repository's root.
build_nextjs() {
  local dir=$1 bridge_url=$2
  mkdir -p "$dir"
  (cd examples/nextjs && tar --exclude=node_modules --exclude=.next --exclude=next-env.d.ts -cf - .) | tar -xf - -C "$dir"
  hack/node.sh "$dir" >/dev/null
  cd "$dir"
  NEXT_TELEMETRY_DISABLED=1 EVENTS_BRIDGE_URL=$bridge_url exec node_modules/.bin/next build
}

# submit_jobs QUEUE TEAM JOB: runs tasks.process_job (examples/python) for TEAM's JOB on the
# Celery task QUEUE every 35 s: 30 steps of 1 s, running 0..96 % then succeeded 100 %. Runs in
# its own bash (see background) in examples/python with RABBITMQ_URL set.
submit_jobs() {
  local queue=$1 team=$2 job=$3
  while :; do
    /usr/bin/python3 -m celery -A tasks call tasks.process_job --args "[\"$team\", \"$job\", 30, 1.0]" --queue="$queue" || true
    sleep 35
  done
}

# down: removes what the demo started, one caller at a time: `make demo-down` stops the demo's
# processes, whose own exit then runs down too and finds nothing left to do.
down() {
  mkdir -p "$root/bin"
  (flock 9 && remove_demo) 9>"$root/bin/demo.lock"
}

remove_demo() {
  local rc=0
  [ -d "$state" ] || { log "nothing to clean up"; return 0; }
  say "cleaning up"
  if [ -f "$state/pids" ]; then
    while read -r pid name; do
      if kill -- "-$pid" 2>/dev/null; then log "stopped $name (process group $pid)"; fi
    done <"$state/pids"
    while read -r pid _; do
      for _ in $(seq 1 20); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 -- "-$pid" 2>/dev/null || true
    done <"$state/pids"
  fi
  if hack/cluster.sh status >/dev/null 2>&1; then
    eval "$(hack/cluster.sh env)"
    # The EventStream first: its finalizer removes the broker topology and needs the operator.
    kubectl delete eventstreams --all -n "$ns" --ignore-not-found --timeout=60s >/dev/null 2>&1 || rc=1
    "$(hack/tool.sh helm)" uninstall "$release" -n "$system_ns" --ignore-not-found --wait --timeout=60s >/dev/null || rc=1
    kubectl delete namespace "$ns" "$system_ns" --ignore-not-found --timeout=90s >/dev/null || rc=1
    if [ -f "$state/started-cluster" ]; then hack/cluster.sh down || rc=1; fi
  fi
  if [ -f "$state/started-rabbitmq" ]; then
    hack/rabbitmq.sh stop || rc=1
  elif hack/rabbitmq.sh status >/dev/null 2>&1; then
    # A node that ran before the demo keeps running: remove the Celery worker's queue and its
    # direct exchange (the EventStream's topology went with the EventStream).
    eval "$(hack/rabbitmq.sh env)"
    for object in queues exchanges; do
      curl -fsS -u guest:guest -X DELETE "$RABBITMQ_TEST_MANAGEMENT_URI/api/$object/%2F/$celery_queue" >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$state"
  log "clean"
  return "$rc"
}

up() {
  # A previous demo that was killed without cleaning up: start from a clean slate.
  if [ -d "$state" ]; then down || true; fi
  mkdir -p "$state"
  trap 'rc=$?; trap - EXIT INT TERM; down || rc=1; exit $rc' EXIT
  trap 'exit 0' INT TERM

  say "local cluster (hack/cluster.sh up)"
  hack/cluster.sh status >/dev/null 2>&1 || touch "$state/started-cluster"
  hack/cluster.sh up
  eval "$(hack/cluster.sh env)"

  say "RabbitMQ node (hack/rabbitmq.sh start)"
  hack/rabbitmq.sh status >/dev/null 2>&1 || touch "$state/started-rabbitmq"
  hack/rabbitmq.sh start
  eval "$(hack/rabbitmq.sh env)"
  local amqp_port=${RABBITMQ_TEST_URI##*:}
  amqp_port=${amqp_port%/}
  local mgmt_port=${RABBITMQ_TEST_MANAGEMENT_URI##*:}

  say "operator image (hack/image.sh)"
  local image repository tag
  tag=demo-$(date +%s)
  if ! image=$(hack/image.sh "$EVENTSTREAM_CLUSTER_REGISTRY/eventstream-operator:$tag" 2>"$state/image.log"); then
    cat "$state/image.log" >&2
    exit 1
  fi
  repository=${image%%:"$tag"*}
  log "pushed $image"

  say "helm install $release (charts/eventstream-operator)"
  local helm
  helm=$(hack/tool.sh helm)
  "$helm" upgrade --install "$release" charts/eventstream-operator -n "$system_ns" --create-namespace \
    --set image.repository="$repository" --set image.tag="$tag" --set statusInterval=5s >"$state/helm.log"
  log "installed; the chart's notes: $state/helm.log"
  kubectl rollout status "deployment/$release" -n "$system_ns" --timeout=180s

  say "the sample EventStream (config/samples/eventstream_classic.yaml)"
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # The sample's Secret reaches the broker as amqp://…@rabbitmq:5672/, a Service name. Here
  # the broker runs on the host, which pods reach at $EVENTSTREAM_CLUSTER_HOST_IP: a Service
  # rabbitmq without selector points there (the cluster's DNS resolves its name).
  kubectl apply -n "$ns" -f - >/dev/null <<SERVICE
apiVersion: v1
kind: Service
metadata:
  name: rabbitmq
spec:
  ports:
    - {name: amqp, port: 5672, targetPort: $amqp_port}
    - {name: management, port: 15672, targetPort: $mgmt_port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: rabbitmq-host
  labels: {kubernetes.io/service-name: rabbitmq}
addressType: IPv4
ports:
  - {name: amqp, port: $amqp_port}
  - {name: management, port: $mgmt_port}
endpoints:
  - addresses: ["$EVENTSTREAM_CLUSTER_HOST_IP"]
SERVICE
  # The sample's JWT key Secret, made as the sample's comment says (random, key `secret`).
  kubectl get secret jwt -n "$ns" >/dev/null 2>&1 ||
    kubectl create secret generic jwt -n "$ns" --from-literal=secret="$(head -c 48 /dev/urandom | base64 -w0)" >/dev/null
  kubectl apply -n "$ns" -f config/samples/eventstream_classic.yaml

  # The Next.js example, as a team deploys it: `next build` compiles the rewrite to the bridge
  # Service (its ClusterIP here: the host has no cluster DNS). It needs only the Service, which
  # the operator creates at once: the build runs while the bridge starts.
  local ip="" build_pid
  for _ in $(seq 1 120); do
    ip=$(kubectl get service "$stream-bridge" -n "$ns" -o jsonpath='{.spec.clusterIP}' 2>/dev/null) && [ -n "$ip" ] && break
    sleep 0.5
  done
  [ -n "$ip" ] || { log "the operator created no Service $stream-bridge in 60s"; exit 1; }
  log "next build of examples/nextjs against http://$ip in the background ($state/nextjs-build.log)"
  background nextjs-build bash -c "set -euo pipefail; $(declare -f build_nextjs); build_nextjs \"\$@\"" \
    build_nextjs "$state/nextjs" "http://$ip"
  build_pid=$!
  kubectl wait --for=condition=Ready "evs/$stream" -n "$ns" --timeout=180s

  local eventctl=$root/dist/eventctl   # built for this machine by hack/image.sh
  # A token for the tenant shown, valid for a day, minted from the Secret (it never leaves
  # this machine; the bridge refuses streams without a token).
  local token
  token=$(kubectl get secret jwt -n "$ns" -o jsonpath='{.data.secret}' | base64 -d |
    "$eventctl" token --secret-file - --team "$tenant" --ttl 24h)
  say "publishing job-status events: team $tenant at ${rate}/s, team $other_tenant at 1/s (eventctl publish)"
  local publisher
  publisher="$(declare -f publish_jobs); publish_jobs \"\$@\""
  background "publish-$tenant" bash -c "$publisher" publish_jobs "$eventctl" "$tenant" "$rate"
  background "publish-$other_tenant" bash -c "$publisher" publish_jobs "$eventctl" "$other_tenant" 1

  local url
  url="http://$ip/api/v1/events?team_id=$tenant&access_token=$token"
  background port-forward kubectl port-forward --address 127.0.0.1 -n "$ns" "service/$stream-bridge" "$port:80"

  # `next start` mints the page's tokens with the sample's jwt Secret (in its environment only).
  say "Next.js page (examples/nextjs): next build against http://$ip, next start on 127.0.0.1:$web_port"
  local page
  if ! wait "$build_pid"; then
    cat "$state/nextjs-build.log" >&2
    log "next build failed"
    exit 1
  fi
  (
    cd "$state/nextjs"
    export NEXT_TELEMETRY_DISABLED=1 EVENTS_JWT_SECRET
    EVENTS_JWT_SECRET=$(kubectl get secret jwt -n "$ns" -o jsonpath='{.data.secret}' | base64 -d)
    background nextjs node_modules/.bin/next start --hostname 127.0.0.1 --port "$web_port"
  )
  page="http://127.0.0.1:$web_port/?team_id=$tenant&job_id=$celery_job"
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$page" 2>/dev/null && break
    sleep 0.5
  done
  curl -fsS -o /dev/null "$page" || { log "next start did not answer on port $web_port:"; cat "$state/nextjs.log" >&2; exit 1; }

  say "Celery worker (examples/python) running job $celery_job of team $tenant every 35 s"
  hack/python.sh >/dev/null
  (
    cd examples/python
    export RABBITMQ_URL=$RABBITMQ_TEST_URI RABBITMQ_EVENTS_EXCHANGE=events.topic PYTHONDONTWRITEBYTECODE=1
    background celery-worker /usr/bin/python3 -m celery -A tasks worker --pool=solo --queues="$celery_queue" \
      --without-gossip --without-mingle --loglevel=INFO
    local submitter
    submitter="$(declare -f submit_jobs); submit_jobs \"\$@\""
    background celery-jobs bash -c "$submitter" submit_jobs "$celery_queue" "$tenant" "$celery_job"
  )

  say "kubectl get eventstreams -n $ns"
  # The figures are refreshed every few seconds; wait until the bridge's replica is counted.
  for _ in $(seq 1 30); do
    [ "$(kubectl get evs "$stream" -n "$ns" -o jsonpath='{.status.bridge.replicasText}')" = 1/1 ] && break
    sleep 1
  done
  kubectl get eventstreams -n "$ns"

  cat >&2 <<EOF

  The Next.js page (examples/nextjs) following Celery's job $celery_job of team $tenant, live:
    $page
    (from another machine: ssh -L $web_port:127.0.0.1:$web_port, then the same URL)
  Open the events in a browser on this machine:
    $url
    or, through kubectl port-forward (also via ssh -L $port:127.0.0.1:$port):
    http://127.0.0.1:$port/api/v1/events?team_id=$tenant&access_token=$token
  As an app would: open http://127.0.0.1:$port/ and run in the DevTools console
    new EventSource('/api/v1/events?team_id=$tenant&access_token=$token').onmessage = (e) => console.log(JSON.parse(e.data))
  The token (team $tenant, 24 h) was minted with:
    kubectl get secret jwt -n $ns -o jsonpath='{.data.secret}' | base64 -d | eventctl token --secret-file - --team $tenant --ttl 24h
  Without a token the bridge answers 401; with it, only team $tenant's events.
  From a shell:  curl -N '$url'
  Watch the status:  KUBECONFIG=$KUBECONFIG kubectl get evs -n $ns -w
  Team $other_tenant's events are published too; the stream of team $tenant never shows them.
EOF
  # The job list page renders from the bridge's snapshot (examples/nextjs/README.md), which
  # the sample leaves off: its URL is printed only for a stream with spec.bridge.snapshot.
  if [ -n "$(kubectl get evs "$stream" -n "$ns" -o jsonpath='{.spec.bridge.snapshot}')" ]; then
    cat >&2 <<EOF
  Team $tenant's job list (examples/nextjs), filled by the bridge's snapshot, then live:
    http://127.0.0.1:$web_port/jobs?team_id=$tenant
EOF
  fi

  say "eventctl tail http://$ip/api/v1/events?team_id=$tenant&access_token=…   (Ctrl-C ends the demo and cleans up)"
  setsid "$eventctl" tail "$url" </dev/null &
  local tail_pid=$!
  echo "$tail_pid tail" >>"$state/pids"
  if [ "$seconds" -gt 0 ]; then
    sleep "$seconds"
    say "kubectl get eventstreams -n $ns  (after ${seconds}s)"
    kubectl get eventstreams -n "$ns"
    kill "$tail_pid" 2>/dev/null || true
  else
    wait "$tail_pid" || true
  fi
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
