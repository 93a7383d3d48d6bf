#!/usr/bin/env bash
# `make test-chaos`: the chaos suite (test/chaos) in its full profile: kill -9 of stream
# replicas, broker restarts, connection resets, network blackholes, classic/quorum bridge kills
# and drains, slow clients per overflow policy and a 10-minute soak, against real bridge
# binaries and a RabbitMQ node of the suite's own. About 15 minutes. It prints the figures as
# markdown for docs/reliability.md (also in bin/chaos/report.md; bridge logs in bin/chaos/logs,
# the test output in bin/chaos/test.log) and fails when a target is missed.
#
#   CHAOS_PROFILE=short hack/chaos.sh     # the few-minute profile that `make test` runs
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

# The suite starts and stops a node of its own; the test node's environment tells the tests
# where RabbitMQ is installed (hack/rabbitmq.sh installs it when missing).
step "private RabbitMQ node"
started_rabbitmq=false
if ! hack/rabbitmq.sh status >/dev/null 2>&1; then
  hack/rabbitmq.sh start
  started_rabbitmq=true
fi
cleanup() { if $started_rabbitmq; then hack/rabbitmq.sh stop || true; fi; }
trap cleanup EXIT
eval "$(hack/rabbitmq.sh env)"

out=$root/bin/chaos
rm -rf "$out/logs" "$out/report.md"
mkdir -p "$out/logs"
export EVENTSTREAM_REQUIRE_INTEGRATION=1
export CHAOS_PROFILE=${CHAOS_PROFILE:-full} CHAOS_LOG_DIR=$out/logs CHAOS_REPORT=$out/report.md

step "chaos suite, profile $CHAOS_PROFILE (output: $out/test.log)"
status=0
go test -count=1 -timeout 60m -v -run '^TestChaos$' ./test/chaos/ >"$out/test.log" 2>&1 || status=$?
grep -E -e '--- (PASS|FAIL)' -e 'missed:' "$out/test.log" >&2 || true
if [ -f "$out/report.md" ]; then
  cat "$out/report.md"
else
  tail -40 "$out/test.log" >&2
fi
step "done (exit $status)"
exit $status
