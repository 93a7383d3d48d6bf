#!/usr/bin/env bash
# A private RabbitMQ node for tests and the demo: its own node name, directories, ports and
# epmd, so it neither depends on nor disturbs any RabbitMQ already running on the machine.
#
# Usage: hack/rabbitmq.sh start|stop|restart|status|env|wait
#   start    install Debian's rabbitmq-server if missing, start the node, wait until it serves
#   stop     stop the node (idempotent)
#   env      print the shell exports tests use (RABBITMQ_TEST_URI, RABBITMQ_TEST_MANAGEMENT_URI)
#
# Settings (environment): RABBITMQ_TEST_DIR (default bin/rabbitmq), RABBITMQ_TEST_AMQP_PORT
# (20672), RABBITMQ_TEST_MGMT_PORT (21672), RABBITMQ_TEST_STREAM_PORT (22552),
# RABBITMQ_TEST_DIST_PORT (23672), RABBITMQ_TEST_EPMD_PORT (24369). Ports stay below 32768:
# ports in the ephemeral range fail with eaddrinuse at boot on these machines.
#
# Test-only: guest may connect from any address (loopback_users = none) so pods of the local
# cluster can reach the node through the CNI bridge.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${RABBITMQ_TEST_DIR:-$root/bin/rabbitmq}
amqp_port=${RABBITMQ_TEST_AMQP_PORT:-20672}
mgmt_port=${RABBITMQ_TEST_MGMT_PORT:-21672}
stream_port=${RABBITMQ_TEST_STREAM_PORT:-22552}
dist_port=${RABBITMQ_TEST_DIST_PORT:-23672}
epmd_port=${RABBITMQ_TEST_EPMD_PORT:-24369}
node=${RABBITMQ_TEST_NODENAME:-eventstream-test@localhost}
rmq_bin=/usr/lib/rabbitmq/bin

log() { echo "rabbitmq.sh: $*" >&2; }

setup_env() {
  export HOME=$dir/home
  export RABBITMQ_NODENAME=$node
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_PID_FILE=$dir/rabbitmq.pid
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
  export RABBITMQ_DIST_PORT=$dist_port
  export ERL_EPMD_PORT=$epmd_port
  export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
}

install_if_missing() {
  [ -x "$rmq_bin/rabbitmq-server" ] && return 0
  log "installing Debian's rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends rabbitmq-server >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends rabbitmq-server >/dev/null; }
  # The package may start a system node; it is not ours and we leave it alone.
}

write_config() {
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$amqp_port
listeners.tcp.other = 0.0.0.0:$amqp_port
management.tcp.port = $mgmt_port
stream.listeners.tcp.default = $stream_port
loopback_users = none
log.console = false
log.file.level = warning
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 50MB
CONF
  # One listener on all interfaces; "other" above would bind twice, keep only the wildcard.
  sed -i '/^listeners.tcp.default/d; s/^listeners.tcp.other/listeners.tcp.default/' "$dir/rabbitmq.conf"
  echo '[].' > "$dir/advanced.config"
  echo '[rabbitmq_management,rabbitmq_stream].' > "$dir/enabled_plugins"
  : > "$dir/rabbitmq-env.conf"
}

running() {
  [ -f "$dir/rabbitmq.pid" ] && kill -0 "$(cat "$dir/rabbitmq.pid")" 2>/dev/null
}

wait_ready() {
  setup_env
  "$rmq_bin/rabbitmqctl" -n "$node" wait --timeout 90 "$dir/rabbitmq.pid" >/dev/null
  # The management listener comes up slightly after the node reports booted.
  for _ in $(seq 1 60); do
    if curl -fsS -u guest:guest "http://127.0.0.1:$mgmt_port/api/overview" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "management API on :$mgmt_port did not answer; see $dir/log"; return 1
}

start() {
  install_if_missing
  if running; then wait_ready; log "already running ($node)"; return 0; fi
  write_config
  setup_env
  # epmd for this node only, on its own port.
  epmd -port "$epmd_port" -daemon
  log "starting $node (amqp :$amqp_port, management :$mgmt_port, stream :$stream_port)"
  nohup "$rmq_bin/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 &
  echo $! > "$dir/rabbitmq.pid"
  if ! wait_ready; then tail -20 "$dir/log/stdout.log" >&2; exit 1; fi
  log "ready"
}

stop() {
  setup_env
  if running; then
    "$rmq_bin/rabbitmqctl" -n "$node" stop "$dir/rabbitmq.pid" >/dev/null 2>&1 || kill "$(cat "$dir/rabbitmq.pid")" 2>/dev/null || true
    for _ in $(seq 1 60); do running || break; sleep 0.5; done
    if running; then kill -9 "$(cat "$dir/rabbitmq.pid")" 2>/dev/null || true; fi
    log "stopped $node"
  fi
  rm -f "$dir/rabbitmq.pid"
}

print_env() {
  echo "export RABBITMQ_TEST_URI=amqp://guest:guest@127.0.0.1:$amqp_port/"
  echo "export RABBITMQ_TEST_MANAGEMENT_URI=http://127.0.0.1:$mgmt_port"
  echo "export RABBITMQ_TEST_DIR=$dir"
}

case ${1:-} in
  start) start ;;
  stop) stop; setup_env; epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true ;;
  restart) stop; start ;;
  status) if running; then echo running; else echo stopped; exit 1; fi ;;
  wait) wait_ready ;;
  env) print_env ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
