#!/usr/bin/env bash
# One prepared GPU check (about 4–5 minutes): a short CUDA + bf16 run of the healthy config, then the same
# run on CPU, steps/s of each side by side; then the diagnostics engine at 50k / 200k / 1M rows on CUDA
# against the CPU record (bench/gpu_engine_check.py), into $OUT/gpu.txt. No downloads.
#   OUT=/some/dir bash bench/gpu_check.sh
set -x
set -u
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
REPORT="$OUT/gpu.txt"
: > "$REPORT"

# Use whichever python has CUDA torch: the venv, then the system ones.
PY=""
for cand in .venv/bin/python python3 python; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$REPORT"; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then
  echo "no python with CUDA torch found" | tee -a "$REPORT"
  for cand in .venv/bin/python python3; do "$cand" -c "import torch; print(torch.__version__, torch.cuda.is_available())" >>"$REPORT" 2>&1; done
  nvidia-smi >>"$REPORT" 2>&1
  exit 1
fi
"$PY" -c "import torch, numpy, sklearn; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$REPORT"

RUNS="$OUT/runs"
rm -rf "$RUNS"
run_one () {  # $1 = device, $2 = steps
  local t0 t1
  t0=$(date +%s.%N)
  timeout 240 "$PY" -m training.train --config training/configs/healthy-infonce-tau0.1.toml \
    --runs-dir "$RUNS" --name "gpu-check-$1" --checkpoint-dir "$OUT/ck" \
    --set device="\"$1\"" --set steps="$2" --set snapshot_every=100 >>"$REPORT" 2>&1
  local rc=$?
  t1=$(date +%s.%N)
  "$PY" - "$RUNS/gpu-check-$1" "$1" "$rc" "$t0" "$t1" <<'PYEOF' | tee -a "$REPORT"
import sys
from diagnostics import open_run
path, device, rc, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
try:
    run = open_run(path)
    m = run.metrics().dropna(subset=["loss/total"])
    w = m["wall_time"].to_numpy()
    n = len(m) - 1
    rate = n / (w[-1] - w[0]) if n > 0 else float("nan")  # steady-state: from the first to the last step
    print(f"{device}: rc={rc} status={run.status} steps={len(m)} steps/s={rate:.1f} wall={t1 - t0:.1f}s "
          f"loss {m['loss/total'].iloc[0]:.3f} -> {m['loss/total'].iloc[-1]:.3f} "
          f"top1 {m['batch/top1'].iloc[-1]:.3f} recon_mse {run.metrics()['eval/recon_mse'].dropna().iloc[-1]:.4f}")
except Exception as e:
    print(f"{device}: rc={rc} could not read run: {e}")
PYEOF
}
run_one cuda 200
run_one cpu 200
"$PY" - "$REPORT" <<'PYEOF' | tee -a "$REPORT"
import re, sys
rates = dict(re.findall(r"^(cuda|cpu): .*steps/s=([\d.]+)", open(sys.argv[1]).read(), re.M))
if len(rates) == 2 and float(rates["cpu"]) > 0:
    print(f"speed-up cuda/cpu: {float(rates['cuda']) / float(rates['cpu']):.2f}x")
PYEOF
echo "== engine: CUDA vs CPU record ==" | tee -a "$REPORT"
timeout 180 "$PY" bench/gpu_engine_check.py --n 50000,200000,1000000 --cpu-max 200000 2>&1 | tee -a "$REPORT"
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv >>"$REPORT" 2>&1
cat "$REPORT"
