#!/usr/bin/env bash
# Installs a headless-capable Chromium for the browser tests: Debian's `chromium` package.
# Idempotent: does nothing when /usr/bin/chromium (or $CHROMIUM) is already executable.
# Test tools' own browser downloads do not work on these machines; the Debian package does.
#
# Usage: hack/chromium.sh        prints the browser's path on stdout when done
set -euo pipefail

browser=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$browser" ]; then
  echo "$browser"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "chromium.sh: installing Debian's chromium" >&2
if ! apt-get install -y --no-install-recommends chromium fonts-liberation >/dev/null 2>&1; then
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends chromium fonts-liberation >/dev/null
fi
[ -x /usr/bin/chromium ] || { echo "chromium.sh: /usr/bin/chromium missing after install" >&2; exit 1; }
echo /usr/bin/chromium
