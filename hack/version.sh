#!/usr/bin/env bash
# Prints the project's version: the `appVersion` of charts/eventstream-operator/Chart.yaml,
# the one place it is written. The chart deploys the image of that tag by default, and the
# Makefile (build, dist), hack/image.sh (a reference without a tag) and the Dockerfile build
# the binaries with it as their --version; test/helm (TestOneVersion) fails if any diverges.
#
# Usage: hack/version.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/charts/eventstream-operator/Chart.yaml
version=$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"[:space:]]*\)"\{0,1\}[[:space:]]*$/\1/p' "$chart")
[ -n "$version" ] || { echo "version.sh: no appVersion in $chart" >&2; exit 1; }
echo "$version"
