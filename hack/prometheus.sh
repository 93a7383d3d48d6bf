#!/usr/bin/env bash
# Installs Debian's `prometheus` package when missing: the `prometheus` server (the e2e suite
# runs it on the host against the local cluster) and `promtool` (make test checks the alert
# rules and the dashboard's queries with it). The package's own service is not used.
# Idempotent: does nothing when both binaries are on PATH.
#
# Usage: hack/prometheus.sh        prints the prometheus binary's path on stdout when done
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  command -v prometheus
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "prometheus.sh: installing Debian's prometheus" >&2
if ! apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; then
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends prometheus >/dev/null
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
  { echo "prometheus.sh: prometheus or promtool missing after install" >&2; exit 1; }
command -v prometheus
