#!/usr/bin/env bash
# Set up (first time) and open the dashboard on the shipped sample_runs/. Extra arguments go to the app,
# e.g. `bash scripts/dashboard.sh --runs runs/`. A relative --runs is the caller's folder, as with
# `contrastscope dashboard` (the app runs from the clone, so it is made absolute here first).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --runs=*) value="${1#--runs=}"; shift; set -- --runs "$value" "$@"; continue ;;
    --runs)
      [ "$#" -ge 2 ] || { echo "dashboard.sh: --runs needs a folder or URL" >&2; exit 2; }
      case "$2" in
        *://*|/*) args+=("--runs" "$2") ;;   # a URL or an absolute path: as given
        *) args+=("--runs" "$PWD/$2") ;;
      esac
      shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
bash "$REPO/scripts/setup.sh" requirements.txt
cd "$REPO"
if [ "${#args[@]}" -gt 0 ]; then
  exec .venv/bin/python -m streamlit run app.py -- "${args[@]}"
fi
exec .venv/bin/python -m streamlit run app.py
