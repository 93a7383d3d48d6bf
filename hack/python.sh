#!/usr/bin/env bash
# Installs the Python libraries of examples/python from Debian: python3-celery (5.2),
# python3-aio-pika (8.2) and python3-kombu, for Debian's /usr/bin/python3 (the only Python
# package source the project uses). Idempotent: does nothing when they import already.
#
# Usage: hack/python.sh        prints the interpreter's path on stdout when done
set -euo pipefail

python=/usr/bin/python3
packages=(python3-celery python3-aio-pika python3-kombu)
if ! "$python" -c 'import celery, aio_pika, kombu' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  echo "python.sh: installing Debian's ${packages[*]}" >&2
  if ! apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null
  fi
  "$python" -c 'import celery, aio_pika, kombu' || { echo "python.sh: ${packages[*]} do not import after install" >&2; exit 1; }
fi
echo "$python"
