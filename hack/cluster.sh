#!/usr/bin/env bash
# A real single-node Kubernetes cluster without a container engine, for end-to-end tests and
# the demo. Every part is built or installed by the project itself:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#     built from Go modules (hack/build-k8s.sh; cached outside the clone, linked into bin/k8s)
#   containerd, runc, CNI plugins, iptables      Debian packages (installed when missing)
#   a loopback image registry                    crane registry serve (bin/crane)
#   the pod sandbox ("pause") image              hack/cluster/pause/main.go, pushed to it
#
# Usage: hack/cluster.sh up|down|status|env|kubeconfig|smoke
#   up          start everything that is not running (idempotent) and wait until the node is
#               Ready, kube-proxy has synced and the default ServiceAccount exists
#   down        stop everything `up` started: pods, containerd shims, network namespaces, the
#               bridge, veths, iptables rules of kube-proxy, mounts under the state dir. Removes
#               the runtime state (etcd data, images, pods); keeps certificates and the last logs
#   status      one line per component; exit 0 only when all run
#   env         shell exports for tests: eval "$(hack/cluster.sh env)" sets KUBECONFIG,
#               EVENTSTREAM_CLUSTER_REGISTRY (127.0.0.1:25000), EVENTSTREAM_CLUSTER_HOST_IP
#               (10.88.0.1: the host as seen from pods) and EVENTSTREAM_CLUSTER_DIR
#   kubeconfig  print the admin kubeconfig path
#   smoke       prove the cluster works: push an image built here, run a Deployment from it,
#               reach the pod by pod IP and by Service ClusterIP from the host, and dial the
#               private RabbitMQ node (hack/rabbitmq.sh) from a pod
#
# Networking: pods live on the bridge evs0 (10.88.0.0/16); the host is 10.88.0.1 on it, and the
# API server and kubelet listen there, so pods reach the API server through the `kubernetes`
# Service (kube-proxy, iptables mode) and the host reaches pods by pod IP and Service ClusterIP
# (10.96.0.0/16). Host services listening on 0.0.0.0 (the RabbitMQ test node) are reachable
# from pods at 10.88.0.1. Cluster DNS: CoreDNS (built from Go modules) on 10.88.0.1:53 behind
# the Service kube-dns (10.96.0.10), so pods resolve Service names. Details:
# docs/local-cluster.md.
#
# Settings (environment): EVENTSTREAM_CLUSTER_DIR (state, logs; default bin/cluster).
# Ports (all below 32768): etcd 25379/25380, registry 25000, kube-apiserver 26443,
# kubelet 26250 (healthz 26248), kube-controller-manager 26257, kube-scheduler 26259,
# kube-proxy healthz/metrics 26256/26249, containerd streaming 26010.
# Needs root (containerd, network namespaces, iptables).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=hack/cluster/tools.sh
. "$root/hack/cluster/tools.sh"

dir=$(realpath -m "${EVENTSTREAM_CLUSTER_DIR:-$root/bin/cluster}")
node_name=evs-node
bridge=evs0
pod_cidr=10.88.0.0/16
host_ip=10.88.0.1          # the host on the pod bridge: API server, kubelet, RabbitMQ for pods
service_cidr=10.96.0.0/16
kubernetes_service_ip=10.96.0.1
dns_service_ip=10.96.0.10   # kube-dns: CoreDNS on the host
etcd_port=25379
etcd_peer_port=25380
registry_port=25000
registry=127.0.0.1:$registry_port
apiserver_port=26443
kubelet_port=26250
kubelet_healthz_port=26248
kcm_port=26257
scheduler_port=26259
proxy_healthz_port=26256
proxy_metrics_port=26249
coredns_health_port=26053
coredns_ready_port=26181
containerd_stream_port=26010
pause_image=$registry/eventstream-local/pause:1

k8s_bin=$root/bin/k8s
pki=$dir/pki
logs=$dir/logs
run=$dir/run
containerd_dir=$dir/containerd
containerd_sock=$containerd_dir/containerd.sock
runc_root=$containerd_dir/runc
kubelet_dir=$dir/kubelet
cni_conf_dir=$dir/cni/net.d
cni_ipam_dir=$dir/cni/ipam
admin_kubeconfig=$dir/kubeconfig
export PATH=$k8s_bin:$root/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

# Components in start order; down stops them in reverse.
components=(registry etcd kube-apiserver coredns containerd kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { echo "cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# fail_with_log COMPONENT MESSAGE: report a failure and show where to look.
fail_with_log() {
  local name=$1 message=$2
  log "ERROR: $message"
  log "last lines of $logs/$name.log:"
  tail -n 25 "$logs/$name.log" 2>/dev/null | sed 's/^/    /' >&2 || true
  log "full log: $logs/$name.log   (hack/cluster.sh down cleans up)"
  exit 1
}

# wait_for [--process NAME] SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.5 s until it
# succeeds or the deadline passes; returns 1 on timeout, or at once when the daemon NAME exited.
wait_for() {
  local process=
  if [ "$1" = --process ]; then
    process=$2
    shift 2
  fi
  local seconds=$1 description=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$process" ] && ! running "$process"; then
      log "$process exited while waiting for $description"
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${seconds}s waiting for $description"
      return 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- processes

pid_of() { cat "$run/$1.pid" 2>/dev/null || true; }

# running NAME: the process recorded for NAME is alive and is still the binary we started.
running() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && alive "$pid" &&
    { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$(cat "$run/$1.cmd" 2>/dev/null || echo //none//)"
}

# start_daemon NAME BINARY ARGS...: starts BINARY in its own session (it outlives this script),
# output appended to logs/NAME.log, pid in run/NAME.pid. No-op when already running.
start_daemon() {
  local name=$1
  shift
  if running "$name"; then
    log "$name already running (pid $(pid_of "$name"))"
    return 0
  fi
  log "starting $name"
  echo "=== $(date -u +%FT%TZ) start" >> "$logs/$name.log"
  # fd 9 is the lock of this script: daemons must not inherit (and so hold) it.
  setsid "$@" >> "$logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$run/$name.pid"
  echo "$1" > "$run/$name.cmd"
}

# alive PID: the process exists and has not exited. An exited daemon stays a zombie until the
# machine's init reaps it (here only every second or two), so a zombie counts as gone.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
  local pid=$1 seconds=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + seconds))
  while alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      return 0
    fi
    sleep 0.1
  done
}

stop_daemon() {
  local name=$1
  if running "$name"; then
    log "stopping $name"
    stop_pid "$(pid_of "$name")" 15
  fi
  rm -f "$run/$name.pid" "$run/$name.cmd"
}

# ---------------------------------------------------------------- install and build

require_root() {
  [ "$(id -u)" = 0 ] || die "needs root (containerd, network namespaces, iptables); run as root"
}

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v curl >/dev/null || missing+=(curl)
  command -v ss >/dev/null || missing+=(iproute2)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" > "$logs/apt.log" 2>&1 ||
    { apt-get update >> "$logs/apt.log" 2>&1 &&
      apt-get install -y --no-install-recommends "${missing[@]}" >> "$logs/apt.log" 2>&1; } ||
    fail_with_log apt "apt-get install ${missing[*]} failed"
}

# build_kube_proxy: hack/build-k8s.sh does not build kube-proxy; build it the same way, from the
# throw-away module build-k8s.sh prepared, into the same version-keyed cache.
build_kube_proxy() {
  local api_version kube_version cache
  api_version=$(go list -m -f '{{.Version}}' k8s.io/api)
  kube_version="v1${api_version#v0}"
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/k8s/$kube_version
  if [ ! -x "$cache/kube-proxy" ]; then
    [ -f "$cache/src-kubernetes/go.mod" ] || die "missing $cache/src-kubernetes (hack/build-k8s.sh prepares it)"
    log "building kube-proxy $kube_version"
    (cd "$cache/src-kubernetes" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=$kube_version \
        -X k8s.io/client-go/pkg/version.gitVersion=$kube_version" \
        -o "$cache/kube-proxy.tmp" k8s.io/kubernetes/cmd/kube-proxy) > "$logs/build.log" 2>&1 ||
      fail_with_log build "building kube-proxy failed"
    mv "$cache/kube-proxy.tmp" "$cache/kube-proxy"
  fi
  ln -sf "$cache/kube-proxy" "$k8s_bin/kube-proxy"
}

build_binaries() {
  # A cold machine builds Kubernetes for many minutes: say which component and since when.
  local started=$SECONDS line
  "$root/hack/build-k8s.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl 2>&1 |
    tee -a "$logs/build.log" | { grep --line-buffered '^build-k8s: building' || true; } |
    while IFS= read -r line; do
      log "${line#build-k8s: } — $((SECONDS - started))s so far; log: $logs/build.log"
    done || fail_with_log build "hack/build-k8s.sh failed"
  build_kube_proxy
  ensure_crane > /dev/null || fail_with_log build "installing crane failed"
  ensure_crictl > /dev/null || fail_with_log build "installing crictl failed"
  if [ ! -x "$tools_cache/coredns-$coredns_version" ]; then
    log "building coredns $coredns_version (cold: about 5 minutes; log: $logs/build.log)"
  fi
  ensure_coredns >> "$logs/build.log" 2>&1 || fail_with_log build "installing coredns failed"
}

# ---------------------------------------------------------------- certificates and credentials

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the cluster CA.
sign() {
  local name=$1 subject=$2 extensions=$3
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "$subject" 2>/dev/null
  printf '%s\n' "$extensions" > "$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# write_kubeconfig FILE USER TOKEN: a kubeconfig for the API server authenticating by token.
write_kubeconfig() {
  local file=$1 user=$2 token=$3
  (umask 077 && cat > "$file" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: eventstream-local
  cluster:
    server: https://$host_ip:$apiserver_port
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: eventstream-local
  context: {cluster: eventstream-local, user: $user}
current-context: eventstream-local
YAML
  )
}

# ensure_pki: CA, serving and client certificates, service-account keys, static tokens and
# kubeconfigs. Generated once; kept by `down` so kubeconfigs stay valid between runs.
ensure_pki() {
  [ -f "$pki/done" ] && return 0
  log "generating certificates and credentials in $pki"
  rm -rf "$pki"
  mkdir -p "$pki" "$dir/kubeconfigs"
  chmod 700 "$pki"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 -subj "/CN=eventstream-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$host_ip,IP:127.0.0.1,IP:$kubernetes_service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign kubelet "/CN=$node_name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$host_ip,IP:127.0.0.1,DNS:$node_name,DNS:localhost"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  local token_admin token_kubelet token_kcm token_scheduler token_proxy
  token_admin=$(openssl rand -hex 24)
  token_kubelet=$(openssl rand -hex 24)
  token_kcm=$(openssl rand -hex 24)
  token_scheduler=$(openssl rand -hex 24)
  token_proxy=$(openssl rand -hex 24)
  # token,user,uid,"groups"
  cat > "$pki/tokens.csv" <<CSV
$token_admin,eventstream-admin,uid-admin,"system:masters"
$token_kubelet,system:node:$node_name,uid-kubelet,"system:nodes"
$token_kcm,system:kube-controller-manager,uid-kcm
$token_scheduler,system:kube-scheduler,uid-scheduler
$token_proxy,system:kube-proxy,uid-kube-proxy
CSV
  chmod 600 "$pki"/*.key "$pki/tokens.csv"
  write_kubeconfig "$admin_kubeconfig" eventstream-admin "$token_admin"
  write_kubeconfig "$dir/kubeconfigs/kubelet" "system:node:$node_name" "$token_kubelet"
  write_kubeconfig "$dir/kubeconfigs/kube-controller-manager" system:kube-controller-manager "$token_kcm"
  write_kubeconfig "$dir/kubeconfigs/kube-scheduler" system:kube-scheduler "$token_scheduler"
  write_kubeconfig "$dir/kubeconfigs/kube-proxy" system:kube-proxy "$token_proxy"
  touch "$pki/done"
}

# ---------------------------------------------------------------- host network

# remove_bridge_ports: delete the veths attached to the bridge (their peers die with them).
remove_bridge_ports() {
  local veth
  for veth in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$veth" 2>/dev/null || true
  done
}

ensure_bridge() {
  if ip link show "$bridge" >/dev/null 2>&1 && ! running containerd; then
    # Pods of a cluster killed without `down` (possibly from another clone) may still hold
    # addresses our fresh IPAM hands out again: disconnect them.
    remove_bridge_ports
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    log "creating bridge $bridge ($host_ip on $pod_cidr)"
    # Recorded so that down restores the host exactly: the bridge CNI plugin turns forwarding on.
    [ -f "$dir/host-ip-forward" ] || cat /proc/sys/net/ipv4/ip_forward > "$dir/host-ip-forward"
    ip link add "$bridge" type bridge
  fi
  # The CNI bridge plugin accepts an existing bridge when it holds exactly gateway/prefix.
  ip addr show dev "$bridge" | grep -q "inet $host_ip/16" || ip addr add "$host_ip/16" dev "$bridge"
  ip link set "$bridge" up
  # Host -> Service ClusterIP goes out on the bridge with the bridge address as source.
  ip route show "$service_cidr" | grep -q "dev $bridge" ||
    ip route replace "$service_cidr" dev "$bridge" src "$host_ip"
}

write_cni_config() {
  mkdir -p "$cni_conf_dir" "$cni_ipam_dir"
  cat > "$cni_conf_dir/10-eventstream.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "eventstream-local",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$host_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$cni_ipam_dir"
      }
    }
  ]
}
JSON
}

# ---------------------------------------------------------------- components

start_registry() {
  mkdir -p "$dir/registry"
  start_daemon registry "$root/bin/crane" registry serve --address "$registry" --disk "$dir/registry"
  wait_for --process registry 20 "registry on $registry" curl -fsS --max-time 2 "http://$registry/v2/" ||
    fail_with_log registry "the loopback registry did not start"
}

start_etcd() {
  mkdir -p "$dir/etcd"
  chmod 700 "$dir/etcd"
  start_daemon etcd "$k8s_bin/etcd" --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "default=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for --process etcd 30 "etcd health" sh -c "curl -fsS --max-time 2 http://127.0.0.1:$etcd_port/health | grep -q '\"health\":\"true\"'" ||
    fail_with_log etcd "etcd did not become healthy"
}

start_apiserver() {
  start_daemon kube-apiserver "$k8s_bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$host_ip" --advertise-address "$host_ip" --secure-port "$apiserver_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$service_cidr" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --allow-privileged=true --profiling=false --v=1
  wait_for --process kube-apiserver 90 "kube-apiserver /readyz" kubectl --kubeconfig "$admin_kubeconfig" --request-timeout=5s get --raw /readyz ||
    fail_with_log kube-apiserver "kube-apiserver did not become ready"
}

# start_coredns: cluster DNS. CoreDNS runs on the host, listens on the pod bridge's host address
# (port 53), answers for cluster.local from the API server (kubernetes plugin) and forwards
# the rest to the host's resolvers. The Service kube-dns (kube-system, $dns_service_ip) points
# at it through an EndpointSlice; kubelet gives pods that address as their nameserver, so pods
# resolve <svc>.<ns>.svc.cluster.local and short names.
start_coredns() {
  cat > "$dir/Corefile" <<COREFILE
.:53 {
    bind $host_ip
    errors
    health 127.0.0.1:$coredns_health_port
    ready 127.0.0.1:$coredns_ready_port
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $admin_kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    loop
}
COREFILE
  start_daemon coredns "$root/bin/coredns" -conf "$dir/Corefile"
  wait_for --process coredns 60 "coredns ready (kubernetes plugin synced)" curl -fsS --max-time 2 "http://127.0.0.1:$coredns_ready_port/ready" ||
    fail_with_log coredns "coredns did not become ready"
  k apply -f - > /dev/null <<YAML || fail_with_log kube-apiserver "creating the kube-dns Service failed"
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $dns_service_ip
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns}
addressType: IPv4
ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
endpoints:
  - addresses: ["$host_ip"]
YAML
}

write_containerd_config() {
  mkdir -p "$containerd_dir/root" "$containerd_dir/state" "$runc_root"
  cat > "$containerd_dir/config.toml" <<TOML
# Private containerd of hack/cluster.sh: own root, state, socket and runc root, so it neither
# uses nor disturbs a containerd of the machine.
version = 2
root = "$containerd_dir/root"
state = "$containerd_dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$containerd_sock"

[ttrpc]
  address = "$containerd_sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$containerd_dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # The machine lacks CAP_SYS_RESOURCE: without this runc fails with
  # "can't get final child's PID from pipe" (cannot lower oom_score_adj).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "$containerd_stream_port"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$runc_root"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni_conf_dir"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$registry"]
    endpoint = ["http://$registry"]
TOML
}

start_containerd() {
  write_containerd_config
  start_daemon containerd /usr/bin/containerd --config "$containerd_dir/config.toml"
  wait_for --process containerd 30 "containerd CRI" crictl --runtime-endpoint "unix://$containerd_sock" --timeout 2s info ||
    fail_with_log containerd "containerd did not start"
}

push_pause_image() {
  if crane digest --insecure "$pause_image" >/dev/null 2>&1; then
    return 0
  fi
  log "building and pushing the pause image $pause_image"
  local work
  work=$(mktemp -d)
  CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$work/rootfs/pause" "$root/hack/cluster/pause/main.go" ||
    { rm -rf "$work"; die "building hack/cluster/pause failed"; }
  tar -C "$work/rootfs" --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$work/layer.tar" pause
  if ! crane append --insecure --oci-empty-base -f "$work/layer.tar" -t "$pause_image" >/dev/null 2>"$work/err" ||
    ! crane mutate --insecure "$pause_image" --entrypoint /pause --set-platform "linux/$(go env GOARCH)" \
      -t "$pause_image" >/dev/null 2>>"$work/err"; then
    cat "$work/err" >&2
    rm -rf "$work"
    die "pushing $pause_image failed"
  fi
  rm -rf "$work"
}

start_controller_manager() {
  start_daemon kube-controller-manager "$k8s_bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfigs/kube-controller-manager" \
    --authentication-kubeconfig "$dir/kubeconfigs/kube-controller-manager" \
    --authorization-kubeconfig "$dir/kubeconfigs/kube-controller-manager" \
    --controllers '*,-nodeipam' --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$kcm_port" --v=1
}

start_scheduler() {
  start_daemon kube-scheduler "$k8s_bin/kube-scheduler" \
    --kubeconfig "$dir/kubeconfigs/kube-scheduler" \
    --authentication-kubeconfig "$dir/kubeconfigs/kube-scheduler" \
    --authorization-kubeconfig "$dir/kubeconfigs/kube-scheduler" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$scheduler_port" --v=1
}

start_kubelet() {
  mkdir -p "$kubelet_dir" "$dir/pod-logs"
  cat > "$dir/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $host_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$containerd_sock
podLogsDir: $dir/pod-logs
# The machine has cgroup v1 and no systemd-managed cgroups.
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
# No CAP_SYS_RESOURCE: the kubelet cannot lower its own oom_score_adj.
oomScoreAdj: 0
resolvConf: /etc/resolv.conf
clusterDNS: [$dns_service_ip]
clusterDomain: cluster.local
serializeImagePulls: false
# A test node: never evict or garbage-collect images because of a busy shared disk.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  start_daemon kubelet "$k8s_bin/kubelet" --config "$dir/kubelet-config.yaml" \
    --kubeconfig "$dir/kubeconfigs/kubelet" --root-dir "$kubelet_dir" \
    --hostname-override "$node_name" --node-ip "$host_ip" --v=1
}

start_kube_proxy() {
  cat > "$dir/kube-proxy-config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kubeconfigs/kube-proxy}
mode: iptables
hostnameOverride: $node_name
clusterCIDR: $pod_cidr
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
oomScoreAdj: 0
# Leave the host's conntrack settings and route_localnet alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
nodePortAddresses: [primary]
YAML
  start_daemon kube-proxy "$k8s_bin/kube-proxy" --config "$dir/kube-proxy-config.yaml" --v=1
}

k() { kubectl --kubeconfig "$admin_kubeconfig" "$@"; }
# k_quick: one request that must answer within 5 s (for polling).
k_quick() { kubectl --kubeconfig "$admin_kubeconfig" --request-timeout=5s "$@"; }

node_ready() {
  [ "$(k_quick get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

wait_cluster_ready() {
  wait_for --process kube-controller-manager 60 "kube-controller-manager healthz" curl -fsSk --max-time 2 "https://127.0.0.1:$kcm_port/healthz" ||
    fail_with_log kube-controller-manager "kube-controller-manager is not healthy"
  wait_for --process kube-scheduler 60 "kube-scheduler healthz" curl -fsSk --max-time 2 "https://127.0.0.1:$scheduler_port/healthz" ||
    fail_with_log kube-scheduler "kube-scheduler is not healthy"
  wait_for --process kubelet 120 "node $node_name Ready" node_ready ||
    fail_with_log kubelet "node $node_name did not become Ready"
  wait_for --process kube-proxy 60 "kube-proxy healthz" curl -fsS --max-time 2 "http://127.0.0.1:$proxy_healthz_port/healthz" ||
    fail_with_log kube-proxy "kube-proxy did not sync its rules"
  wait_for 60 "the default ServiceAccount" k_quick -n default get serviceaccount default ||
    fail_with_log kube-controller-manager "the default ServiceAccount was not created"
  wait_for 60 "kube-root-ca.crt in default" k_quick -n default get configmap kube-root-ca.crt ||
    fail_with_log kube-controller-manager "kube-root-ca.crt was not published"
}

cmd_up() {
  require_root
  local started=$SECONDS
  mkdir -p "$dir" "$logs" "$run" "$k8s_bin"
  if ! any_running && { [ -d "$containerd_dir" ] || [ -d "$dir/etcd" ]; }; then
    # A previous cluster was killed without `down` (a crash, the end of a session): clear its
    # pods, mounts and network first so the new one starts from a clean state.
    log "cleaning up the state of a cluster that was not shut down"
    teardown
    mkdir -p "$run"
  fi
  if ! any_running; then
    # A fresh start: the previous run's logs move to logs/previous/ (so logs stay bounded).
    mkdir -p "$logs/previous"
    find "$logs" -maxdepth 1 -name '*.log' -exec mv -f {} "$logs/previous/" \;
  fi
  install_packages
  build_binaries
  ensure_pki
  ensure_bridge
  write_cni_config
  start_registry
  start_etcd
  start_apiserver
  start_coredns
  start_containerd
  push_pause_image
  start_controller_manager
  start_scheduler
  start_kubelet
  start_kube_proxy
  wait_cluster_ready
  log "cluster ready in $((SECONDS - started))s; use: eval \"\$(hack/cluster.sh env)\""
}

# ---------------------------------------------------------------- teardown

# pods_remove: stop and remove every pod sandbox through CRI, so containerd runs the CNI DEL,
# removes network namespaces, veths and rootfs mounts the regular way.
pods_remove() {
  running containerd || return 0
  local crictl_cmd=(crictl --runtime-endpoint "unix://$containerd_sock" --timeout 20s)
  local pods
  pods=$("${crictl_cmd[@]}" pods -q 2>/dev/null || true)
  [ -z "$pods" ] && return 0
  log "removing $(echo "$pods" | wc -l) pod sandbox(es)"
  # shellcheck disable=SC2086
  "${crictl_cmd[@]}" stopp $pods >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  "${crictl_cmd[@]}" rmp -f $pods >/dev/null 2>&1 || true
}

# sweep_containers: whatever CRI could not remove: kill containers through runc with our root,
# then containerd shims started for our socket (matched by that socket in their arguments).
sweep_containers() {
  local id pid
  if [ -d "$runc_root" ]; then
    for state in "$runc_root"/*/*; do
      [ -d "$state" ] || continue
      id=$(basename "$state")
      runc --root "$(dirname "$state")" kill "$id" KILL >/dev/null 2>&1 || true
      runc --root "$(dirname "$state")" delete --force "$id" >/dev/null 2>&1 || true
    done
  fi
  for pid in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $containerd_sock( |$)" || true); do
    log "killing leftover containerd shim $pid"
    kill -KILL "$pid" 2>/dev/null || true
  done
}

mounts_under_dir() { awk -v prefix="$dir/" 'index($5, prefix) == 1 {print $5}' /proc/self/mountinfo; }

# unmount_all: every mount below the state dir, deepest first.
unmount_all() {
  local target
  mounts_under_dir | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- | while read -r target; do
      umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || log "could not unmount $target"
    done
}

# remove_kube_iptables IPTABLES: the KUBE-* chains kube-proxy (services) and the kubelet
# (KUBE-FIREWALL, canaries) created, and the jumps to them from the built-in chains. Only the
# cluster's own components create KUBE-* chains on this machine, and they are stopped by now.
remove_kube_iptables() {
  local iptables=$1 table rule chain
  command -v "$iptables" >/dev/null || return 0
  for table in filter nat mangle raw; do
    "$iptables" -t "$table" -S 2>/dev/null | grep -q -- '-N KUBE-' || continue
    "$iptables" -t "$table" -S 2>/dev/null | awk '/^-A [A-Z]+ .*-j KUBE-/' | while read -r rule; do
      eval "$iptables -w -t $table -D ${rule#-A }" || log "could not delete $iptables -t $table rule: $rule"
    done
    local chains
    chains=$("$iptables" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}')
    for chain in $chains; do
      "$iptables" -w -t "$table" -F "$chain"
    done
    for chain in $chains; do
      "$iptables" -w -t "$table" -X "$chain" || log "could not delete $iptables -t $table chain $chain"
    done
  done
}

network_down() {
  remove_bridge_ports
  ip route del "$service_cidr" dev "$bridge" 2>/dev/null || true
  if ip link show "$bridge" >/dev/null 2>&1; then
    log "deleting bridge $bridge"
    ip link delete "$bridge"
  fi
  remove_kube_iptables iptables
  remove_kube_iptables ip6tables
  if [ -f "$dir/host-ip-forward" ]; then
    cat "$dir/host-ip-forward" > /proc/sys/net/ipv4/ip_forward
    rm -f "$dir/host-ip-forward"
  fi
  # Legacy container log links the kubelet keeps in /var/log/containers point into our pod logs.
  if [ -d /var/log/containers ]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2>/dev/null || true
  fi
}

# leftovers: processes of this cluster still running: a daemon or shim (every one has the state
# dir in its arguments) or a container (its cgroup is below k8s.io/, where runc puts pods).
# Other Kubernetes processes of the machine (envtest's etcd and kube-apiserver) do not count.
leftovers() {
  local file pid
  { grep -lsF -- "$dir/" /proc/[0-9]*/cmdline; grep -ls ':/k8s.io/' /proc/[0-9]*/cgroup; true; } 2>/dev/null |
    while read -r file; do
      pid=${file#/proc/}
      pid=${pid%%/*}
      if [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ]; then continue; fi
      echo "$pid $({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-120)"
    done | sort -u
}

any_running() {
  local name
  for name in "${components[@]}"; do
    running "$name" && return 0
  done
  return 1
}

cmd_down() {
  require_root
  mkdir -p "$logs" "$run"
  local started=$SECONDS
  teardown
  log "cluster down in $((SECONDS - started))s; nothing of it is running"
}

# teardown: stop everything and remove the runtime state (see cmd_down).
teardown() {
  stop_daemon kube-proxy
  stop_daemon kubelet
  pods_remove
  stop_daemon kube-scheduler
  stop_daemon kube-controller-manager
  stop_daemon coredns
  stop_daemon kube-apiserver
  stop_daemon etcd
  stop_daemon containerd
  stop_daemon registry
  sweep_containers
  unmount_all
  # The bridge and the KUBE-* chains are the machine's: when another state directory's cluster
  # still serves (this one's API server is stopped by now), they are its, and stay.
  if ss -ltnH "sport = :$apiserver_port" 2>/dev/null | grep -q .; then
    log "another cluster listens on :$apiserver_port: leaving the network ($bridge, KUBE-* chains) to it"
  else
    network_down
  fi
  local left
  left=$(leftovers)
  [ -z "$left" ] || { log "ERROR: processes left running:"; echo "$left" >&2; exit 1; }
  [ -z "$(mounts_under_dir)" ] || die "mounts left under $dir: $(mounts_under_dir | tr '\n' ' ')"
  # Runtime state goes; certificates, kubeconfigs and the last logs stay.
  rm -rf --one-file-system "$dir/etcd" "$containerd_dir" "$kubelet_dir" "$dir/pod-logs" "$cni_ipam_dir" \
    "$dir/registry" "$run"
  # Cgroups runc leaves for pods (cgroupsPerQOS is off: they sit at <controller>/k8s.io/);
  # rmdir only removes cgroups without processes.
  local cgroup
  for cgroup in /sys/fs/cgroup/*/k8s.io; do
    if [ -d "$cgroup" ]; then find "$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
  # containerd 1.6 shims put their sockets in the fixed /run/containerd/s (a killed shim leaves
  # its socket behind: remove sockets nobody listens on), the kubelet its legacy log links in
  # /var/log/containers; remove the directories when empty.
  local socket listening
  listening=$(ss -xlH 2>/dev/null | awk '{print $5}')
  for socket in /run/containerd/s/*; do
    [ -S "$socket" ] || continue
    grep -qxF -- "$socket" <<< "$listening" || rm -f "$socket"
  done
  rmdir /run/containerd/s /run/containerd /var/log/containers 2>/dev/null || true
}

# ---------------------------------------------------------------- status, env

cmd_status() {
  local ok=0 name
  for name in "${components[@]}"; do
    if running "$name"; then
      printf '%-24s running (pid %s)\n' "$name" "$(pid_of "$name")"
    else
      printf '%-24s stopped\n' "$name"
      ok=1
    fi
  done
  if [ $ok = 0 ]; then
    k get nodes -o wide 2>&1 || ok=1
  fi
  return $ok
}

cmd_env() {
  cat <<ENV
export KUBECONFIG=$admin_kubeconfig
export EVENTSTREAM_CLUSTER_REGISTRY=$registry
export EVENTSTREAM_CLUSTER_HOST_IP=$host_ip
export EVENTSTREAM_CLUSTER_DIR=$dir
ENV
}

# ---------------------------------------------------------------- smoke test

cmd_smoke() {
  if ! running kube-apiserver || ! running kubelet; then die "the cluster is not up (hack/cluster.sh up)"; fi
  local work ns=eventstream-smoke image ip cluster_ip
  local rabbit_port=${RABBITMQ_TEST_AMQP_PORT:-20672} rabbit_mgmt_port=${RABBITMQ_TEST_MGMT_PORT:-21672}
  local restricted='{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}'
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/bin"
  CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$work/bin/probe" "$root/hack/cluster/probe/main.go"
  cp "$work/bin/probe" "$work/bin/operator"
  cp "$work/bin/probe" "$work/bin/bridge"
  cp "$work/bin/probe" "$work/bin/eventctl"
  image=$(IMAGE_BINARIES="$work/bin" "$root/hack/image.sh" "$registry/eventstream-smoke:$(date +%s)")
  log "pushed $image"
  k delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
  k create namespace "$ns" >/dev/null
  k label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
  k -n "$ns" apply -f - >/dev/null <<YAML || die "creating the probe Deployment failed"
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec:
      # The restricted Pod Security profile, as the chart's pods use it.
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: probe
        image: $image
        args: [serve, ":8080"]
        securityContext: $restricted
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: probe}
spec:
  selector: {app: probe}
  ports: [{port: 80, targetPort: 8080}]
YAML
  k -n "$ns" rollout status deployment/probe --timeout=120s >&2 || { k -n "$ns" describe pods >&2; die "the probe Deployment did not become ready"; }
  ip=$(k -n "$ns" get pods -l app=probe -o jsonpath='{.items[0].status.podIP}')
  wait_for 10 "pod IP $ip:8080 from the host" curl -fsS --max-time 2 "http://$ip:8080/" ||
    die "pod IP $ip:8080 is not reachable from the host"
  log "ok: pod reachable by pod IP $ip"
  cluster_ip=$(k -n "$ns" get service probe -o jsonpath='{.spec.clusterIP}')
  wait_for 30 "Service $cluster_ip:80 from the host" curl -fsS --max-time 2 "http://$cluster_ip:80/" ||
    die "Service ClusterIP $cluster_ip:80 is not reachable from the host"
  log "ok: Service reachable by ClusterIP $cluster_ip from the host"
  # From inside a pod: the host's RabbitMQ node, the API server as in-cluster clients reach it
  # (kubernetes Service, service-account token and CA; /api needs an authenticated user), and
  # the probe through its Service (pod -> ClusterIP -> pod).
  k -n "$ns" apply -f - >&2 <<YAML || die "creating the checks pod failed"
apiVersion: v1
kind: Pod
metadata: {name: checks}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - {name: rabbitmq, image: $image, command: [/eventctl], args: [dial, "$host_ip:$rabbit_port"], securityContext: $restricted}
  - {name: management, image: $image, command: [/eventctl], args: [dial, "$host_ip:$rabbit_mgmt_port"], securityContext: $restricted}
  - {name: apiserver, image: $image, command: [/eventctl], args: [apiserver, /api], securityContext: $restricted}
  - {name: service, image: $image, command: [/eventctl], args: [get, "http://$cluster_ip/"], securityContext: $restricted}
YAML
  wait_for 60 "pod checks to finish" sh -c "kubectl --kubeconfig '$admin_kubeconfig' -n $ns get pod checks -o jsonpath='{.status.phase}' | grep -qE 'Succeeded|Failed'" || true
  local c
  for c in rabbitmq management apiserver service; do
    k -n "$ns" logs checks -c "$c" 2>&1 | sed "s/^/    $c: /" >&2 || true
  done
  [ "$(k -n "$ns" get pod checks -o jsonpath='{.status.phase}')" = Succeeded ] ||
    die "checks from a pod failed: RabbitMQ at $host_ip:$rabbit_port and $host_ip:$rabbit_mgmt_port (is hack/rabbitmq.sh running?), API server at $kubernetes_service_ip:443, or Service $cluster_ip:80"
  log "ok: a pod reached RabbitMQ at $host_ip:$rabbit_port (management $host_ip:$rabbit_mgmt_port), the API server via the kubernetes Service with its service-account token, and Service $cluster_ip:80"
  k delete namespace "$ns" --wait=false >/dev/null
  log "smoke test passed"
}

# ---------------------------------------------------------------- main

with_lock() {
  mkdir -p "$dir"
  exec 9> "$dir/.lock"
  flock 9
  "$@"
}

case ${1:-} in
  up) with_lock cmd_up ;;
  down) with_lock cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  kubeconfig) echo "$admin_kubeconfig" ;;
  smoke) cmd_smoke ;;
  *) echo "usage: $0 up|down|status|env|kubeconfig|smoke" >&2; exit 2 ;;
esac
