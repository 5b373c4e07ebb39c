#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, the real-browser tests included; then, on a full run, the
# numerics tests once more on one thread. Extra arguments go to pytest (and skip the one-thread pass).
#   bash scripts/test.sh --quick [ARGS]   everything but the browser and slow tests (no Chromium needed), once
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh" requirements-dev.txt
cd "$REPO"
if [ "${1:-}" = "--quick" ]; then
  shift
  exec .venv/bin/python -m pytest -q -p no:cacheprovider -m "not browser and not slow" "$@"
fi
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)" >&2
  fi
fi
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider || status=$?
# BLAS and OpenMP split a reduction across threads, so its rounding depends on the thread count: run the
# files whose assertions are numerical tolerances once more on one thread, so a tolerance that holds for only
# one summation order fails here instead of on a machine with another core count.
NUMERICS=(tests/test_objectives.py tests/test_geometry.py tests/test_collapse.py tests/test_probes.py
          tests/test_summary.py)
echo "== numerics again with OMP_NUM_THREADS=1: ${NUMERICS[*]}"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  .venv/bin/python -m pytest -q -p no:cacheprovider "${NUMERICS[@]}" || status=$?
exit "$status"
