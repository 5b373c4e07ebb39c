#!/usr/bin/env bash
# Create .venv (once) and install the project's Python dependencies into it. Sourced by the other scripts.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="${1:-requirements.txt}"
cd "$REPO"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Skip pip when nothing changed since the last install (keeps the dashboard command fast on a second start).
stamp=".venv/.installed-$(cat requirements.txt "$REQUIREMENTS" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$REQUIREMENTS"
  touch "$stamp"
fi
