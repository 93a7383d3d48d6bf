#!/usr/bin/env bash
# Prints the path of a pinned Go-built tool in bin/, installing it first when missing:
#   hack/tool.sh helm|controller-gen|crane|crictl
# Versions are pinned in hack/cluster/tools.sh; builds are cached outside the clone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/cluster/tools.sh
. "$root/hack/cluster/tools.sh"
case ${1:-} in
  helm) ensure_helm ;;
  controller-gen) ensure_controller_gen ;;
  crane) ensure_crane ;;
  crictl) ensure_crictl ;;
  *) echo "usage: hack/tool.sh helm|controller-gen|crane|crictl" >&2; exit 2 ;;
esac
