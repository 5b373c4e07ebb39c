#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, the real-browser tests included.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh" requirements-dev.txt
cd "$REPO"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)" >&2
  fi
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
