# shellcheck shell=bash
# Sourced by hack/cluster.sh and hack/image.sh: installs the Go-built tools they need.
#
# Each tool is built once with `go install` into a cache keyed by its version,
# ${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/tools/<name>-<version>, which survives
# fresh clones on the same machine, and linked into bin/. A second call builds nothing.
# Requires: $root (the repository root).
: "${root:?tools.sh needs \$root, the repository root}"

tools_cache=${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/tools
crane_version=v0.22.1
crictl_version=v1.37.0

# ensure_go_tool NAME VERSION PACKAGE: prints the path of bin/NAME after making sure it exists.
ensure_go_tool() {
  local name=$1 version=$2 package=$3
  local cached=$tools_cache/$name-$version
  if [ ! -x "$cached" ]; then
    echo "tools: installing $name $version (go install $package@$version)" >&2
    local gobin
    gobin=$(mktemp -d)
    if ! GOBIN=$gobin GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$package@$version" >&2; then
      rm -rf "$gobin"
      echo "tools: go install $package@$version failed" >&2
      return 1
    fi
    mkdir -p "$tools_cache"
    mv "$gobin/$name" "$cached.tmp" && mv "$cached.tmp" "$cached"
    rm -rf "$gobin"
  fi
  mkdir -p "$root/bin"
  ln -sf "$cached" "$root/bin/$name"
  echo "$root/bin/$name"
}

ensure_crane() { ensure_go_tool crane "$crane_version" github.com/google/go-containerregistry/cmd/crane; }
ensure_crictl() { ensure_go_tool crictl "$crictl_version" sigs.k8s.io/cri-tools/cmd/crictl; }

# Cluster DNS (about 5 minutes cold): CoreDNS with its kubernetes plugin.
coredns_version=v1.15.0
ensure_coredns() { ensure_go_tool coredns "$coredns_version" github.com/coredns/coredns; }

helm_version=v3.22.0
controller_gen_version=v0.23.0
ensure_helm() { ensure_go_tool helm "$helm_version" helm.sh/helm/v3/cmd/helm; }
ensure_controller_gen() { ensure_go_tool controller-gen "$controller_gen_version" sigs.k8s.io/controller-tools/cmd/controller-gen; }
