#!/usr/bin/env bash
# Builds Kubernetes binaries from their Go modules and caches them, keyed by version.
#
# Usage: hack/build-k8s.sh [component...]
#   components: kube-apiserver etcd (default), kube-controller-manager kube-scheduler kubelet
#
# The Kubernetes version is derived from go.mod's k8s.io/api (v0.Y.Z -> v1.Y.Z). Binaries are
# built once into ${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/k8s/<version>/ (which
# survives fresh clones on the same machine) and linked into bin/k8s/. A second run builds
# nothing. kubectl is linked from the machine's /usr/bin/kubectl when present, otherwise built.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

api_version=$(go list -m -f '{{.Version}}' k8s.io/api)      # v0.37.2
kube_version="v1${api_version#v0}"                           # v1.37.2
etcd_version=${ETCD_VERSION:-v3.7.0}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/k8s/$kube_version
out=$root/bin/k8s
mkdir -p "$cache" "$out"

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver etcd kubectl)

log() { echo "build-k8s: $*" >&2; }

# throwaway_module DIR: a module requiring k8s.io/kubernetes with every staging module replaced
# by its published v0 version (kubernetes' own go.mod points them at local paths).
kubernetes_module() {
  local dir=$1
  [ -f "$dir/go.sum" ] && return 0
  mkdir -p "$dir"
  (
    cd "$dir"
    cat > go.mod <<MOD
module eventstream.dev/k8s-build

go 1.26
MOD
    GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$kube_version" >/dev/null
    local gomod
    gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$kube_version.mod
    {
      echo "require k8s.io/kubernetes $kube_version"
      echo "replace ("
      sed -n '/^replace (/,/^)/p' "$gomod" | grep -oE 'k8s.io/[a-z0-9-]+ =>' | sed 's/ =>//' |
        while read -r m; do echo "	$m => $m v0${kube_version#v1}"; done
      echo ")"
    } >> go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$kube_version"
  )
}

build_kube() {
  local name=$1 dir=$cache/src-kubernetes
  kubernetes_module "$dir"
  log "building $name $kube_version (cold: several minutes)"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$kube_version \
      -X k8s.io/client-go/pkg/version.gitVersion=$kube_version" \
      -o "$cache/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv "$cache/$name.tmp" "$cache/$name"
}

build_etcd() {
  local dir=$cache/src-etcd-$etcd_version
  mkdir -p "$dir"
  log "building etcd $etcd_version"
  (
    cd "$dir"
    [ -f go.mod ] || printf 'module eventstream.dev/etcd-build\n\ngo 1.26\n' > go.mod
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$cache/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$cache/etcd.tmp" "$cache/etcd"
}

for c in "${components[@]}"; do
  if [ ! -x "$cache/$c" ]; then
    case $c in
      etcd) build_etcd ;;
      kubectl)
        if [ -x /usr/bin/kubectl ]; then ln -sf /usr/bin/kubectl "$cache/kubectl"; else build_kube kubectl; fi ;;
      kube-apiserver|kube-controller-manager|kube-scheduler|kubelet) build_kube "$c" ;;
      *) echo "build-k8s: unknown component $c" >&2; exit 2 ;;
    esac
  fi
  ln -sf "$cache/$c" "$out/$c"
done
log "ready in $out: ${components[*]}"
