#!/usr/bin/env bash
# Set up (first time) and open the dashboard on the shipped sample_runs/. Extra arguments go to the app,
# e.g. `bash scripts/dashboard.sh --runs runs/`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh" requirements.txt
cd "$REPO"
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m streamlit run app.py -- "$@"
fi
exec .venv/bin/python -m streamlit run app.py
