#!/usr/bin/env bash
# Docker-free build of the eventstream-operator image, used by the e2e tests and the demo.
#
# LAYOUT CONTRACT: this script and the Dockerfile must produce the same image layout. Change
# both together.
#   /operator /bridge /eventctl    static linux binaries (CGO_ENABLED=0), owner 65532:65532
#   /etc/passwd /etc/group         root and nonroot (65532), as in distroless static:nonroot
#   /etc/ssl/certs/ca-certificates.crt
#   /tmp (1777)  /home/nonroot (65532, 0700)
#   USER 65532:65532   ENTRYPOINT ["/operator"]   WORKDIR /home/nonroot   platform linux/<GOARCH>
#   ENV PATH, SSL_CERT_FILE as in distroless static:nonroot
# The bridge Deployment runs the same image with command ["/bridge"].
#
# Usage: hack/image.sh REGISTRY/NAME[:TAG]
#   TAG defaults to the project's version (hack/version.sh: the chart's appVersion), the tag
#   the chart deploys by default.
#   Builds dist/{operator,bridge,eventctl} with the version set to TAG (what --version prints):
#     CGO_ENABLED=0 go build -trimpath -ldflags="-s -X …/internal/version.Version=TAG" \
#       -o dist/ ./cmd/operator ./cmd/bridge ./cmd/eventctl
#   lays them out as above, and pushes with crane (no container engine needed). Loopback and
#   localhost registries are used over plain HTTP. Prints the pushed reference with its digest
#   (REGISTRY/NAME:TAG@sha256:...) on stdout; progress goes to stderr.
#
# Settings (environment): IMAGE_BINARIES=DIR takes operator, bridge and eventctl from DIR
# instead of building them (for tests of this script); GOARCH (default: go env GOARCH).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=hack/cluster/tools.sh
. "$root/hack/cluster/tools.sh"

[ $# -eq 1 ] || { echo "usage: $0 REGISTRY/NAME[:TAG]" >&2; exit 2; }
ref=$1
# The tag: after the last ':' of the last path element (a registry's :port is not a tag).
name_tag=${ref##*/}
case $name_tag in
  *:*) tag=${name_tag##*:} ;;
  *) tag=$("$root/hack/version.sh"); ref=$ref:$tag ;;
esac
binaries=(operator bridge eventctl)
arch=${GOARCH:-$(go env GOARCH)}
log() { echo "image.sh: $*" >&2; }

crane=$(ensure_crane)
crane_flags=()
case $ref in
  127.*|localhost:*|localhost/*|\[::1\]*) crane_flags=(--insecure) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "${IMAGE_BINARIES:-}" ]; then
  bin_dir=$IMAGE_BINARIES
else
  bin_dir=$root/dist
  mkdir -p "$bin_dir"
  log "building ${binaries[*]} $tag for linux/$arch"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
    -ldflags="-s -X github.com/eventstream-operator/eventstream-operator/internal/version.Version=$tag" \
    -o "$bin_dir/" ./cmd/operator ./cmd/bridge ./cmd/eventctl
fi

rootfs=$work/rootfs
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home/nonroot"
for b in "${binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || { log "missing executable $bin_dir/$b"; exit 1; }
  [ "$(od -An -c -N4 "$bin_dir/$b" | tr -d ' ')" = '177ELF' ] || { log "$bin_dir/$b is not an ELF binary"; exit 1; }
  install -m 0755 "$bin_dir/$b" "$rootfs/$b"
done
cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/home/nonroot"

# One layer: system files owned by root, then the binaries and the home owned by nonroot.
tar_flags=(--numeric-owner --mtime=@0 --sort=name -C "$rootfs")
tar "${tar_flags[@]}" --owner=0 --group=0 -cf "$work/layer.tar" etc tmp
tar "${tar_flags[@]}" --owner=0 --group=0 --no-recursion -rf "$work/layer.tar" home
tar "${tar_flags[@]}" --owner=65532 --group=65532 -rf "$work/layer.tar" home/nonroot "${binaries[@]}"

log "pushing $ref"
"$crane" "${crane_flags[@]}" append --oci-empty-base -f "$work/layer.tar" -t "$ref" >/dev/null
digest_ref=$("$crane" "${crane_flags[@]}" mutate "$ref" \
  --entrypoint /operator --user 65532:65532 --workdir /home/nonroot --set-platform "linux/$arch" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  -t "$ref")
echo "$ref@${digest_ref##*@}"
