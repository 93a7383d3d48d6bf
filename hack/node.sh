#!/usr/bin/env bash
# Node.js and node_modules for examples/nextjs (and its tests).
#
#   - node and npm from Debian's nodejs package, installed when missing or older than 20.9
#     (the oldest Node that Next.js 16 supports);
#   - `npm ci` of DIR's package-lock.json once per lockfile, into
#     ${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/node_modules/<lockfile sha256>/,
#     and DIR/node_modules a hard-linked copy of it (a second, a new clone or a cleaned tree
#     reuses it; Turbopack refuses a node_modules symlink that points outside the project).
#
# Usage: hack/node.sh [DIR]    DIR defaults to examples/nextjs; prints the cached
#                              node_modules path on stdout when done
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(cd "${1:-$root/examples/nextjs}" && pwd)

log() { echo "node.sh: $*" >&2; }

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1)'
}

if ! node_ok; then
  log "installing Debian's nodejs"
  export DEBIAN_FRONTEND=noninteractive
  packages=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
  apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; }
  node_ok || { log "node $(node --version 2>/dev/null || echo missing) is older than 20.9, which Next.js 16 needs"; exit 1; }
fi

hash=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/node_modules/$hash
if [ ! -d "$cache/node_modules" ]; then
  log "npm ci for $(basename "$dir") (lockfile $hash)"
  mkdir -p "$(dirname "$cache")"
  tmp=$(mktemp -d "$cache.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cp "$dir/package.json" "$dir/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  # A concurrent run may have finished first: keep its copy.
  mv -T "$tmp" "$cache" 2>/dev/null || true
fi
stamp=$dir/node_modules/.lockfile-sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
  rm -rf "$dir/node_modules"
  cp -al "$cache/node_modules" "$dir/node_modules" 2>/dev/null || cp -a "$cache/node_modules" "$dir/node_modules"
  echo "$hash" > "$stamp"
fi
echo "$cache/node_modules"
