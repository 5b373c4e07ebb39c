"""Exact uniformity at scale: the chunked kernel against the torch.pdist reference, side by side.

    python bench/bench_uniformity.py               # N=50,000, d=128 (pdist needs ~15 GB and about a minute)
    python bench/bench_uniformity.py --n 10000     # smaller
    python bench/bench_uniformity.py --skip-pdist  # without the reference

Each measurement runs in its own subprocess so its peak memory (VmHWM from /proc/self/status, and
torch.cuda.max_memory_allocated on a GPU) is its own. Targets: the kernel ≥ 8× faster than pdist, within 2×
of its matrix products alone, and under 2 GB of extra memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return math.nan


def worker(method: str, n: int, d: int, warm: bool = True) -> dict:
    import torch

    from diagnostics.measure import _tensor

    device = _tensor.best_device()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen).to(device)
    y = x + 0.5 * torch.randn(n, d, generator=gen).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_cuda = torch.cuda.memory_allocated() if device.type == "cuda" else 0
    before = rss_mb("VmRSS")
    out: dict = {"method": method, "device": str(device)}
    if warm:  # the first large product pays for thread pools and packing buffers: pay it outside the clock
        worker_body(method, x[:4096], y[:4096], n=4096, device=device, out={})
    sync()
    t0 = time.perf_counter()
    worker_body(method, x, y, n, device, out)
    sync()
    out["seconds"] = time.perf_counter() - t0
    out["extra_rss_mb"] = rss_mb("VmHWM") - before
    if device.type == "cuda":
        out["extra_cuda_mb"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    return out


def worker_body(method, x, y, n, device, out):
    import torch

    from diagnostics.measure import _tensor
    from diagnostics.measure._primitives import upper_tiles
    from diagnostics.reference.geometry import similarity_stats, uniformity, uniformity_estimate

    if method == "pdist":
        xn = torch.nn.functional.normalize(x, dim=1)
        out["value"] = torch.pdist(xn).pow(2).mul(-2).exp().mean().log().item()
    elif method == "kernel":
        out["value"] = uniformity(x)
    elif method == "matmuls":  # the kernel's products alone, over the same upper-triangle tiles
        xn = _tensor.normalize(x)
        a = 2.0 * xn
        for start, end, c0, c1 in upper_tiles(n, device):
            tile = a[start:end] @ xn[c0:c1].T
            del tile
    elif method == "similarity_stats":
        s = similarity_stats(x, y, temperature=0.1)
        out["value"] = s.roc_auc
    elif method == "estimate":
        out["value"], out["standard_error"] = uniformity_estimate(x, sample=4096)
    else:
        raise SystemExit(f"--worker: unknown method {method!r}")


def run_worker(method: str, n: int, d: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--n", str(n), "--d", str(d)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"method": method, "error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--skip-pdist", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.d)))
        return

    methods = ["kernel", "matmuls", "similarity_stats", "estimate"] + ([] if args.skip_pdist else ["pdist"])
    results = {m: run_worker(m, args.n, args.d) for m in methods}
    print(
        f"N={args.n:,}  d={args.d}  device={results['kernel'].get('device')}  "
        f"torch threads={os.environ.get('OMP_NUM_THREADS', 'default')}"
    )
    print(f"{'method':<18}{'seconds':>10}{'extra RSS MB':>14}{'extra CUDA MB':>15}  value")
    for m, r in results.items():
        if "error" in r:
            print(f"{m:<18} failed: {r['error']}")
            continue
        value = r.get("value")
        extra = f"  ± {r['standard_error']:.4f}" if "standard_error" in r else ""
        print(
            f"{m:<18}{r['seconds']:>10.2f}{r['extra_rss_mb']:>14.0f}{r.get('extra_cuda_mb', math.nan):>15.0f}"
            f"  {'' if value is None else f'{value:.6f}'}{extra}"
        )
    k, mm = results["kernel"], results["matmuls"]
    if "seconds" in k and "seconds" in mm:
        print(f"kernel / matmuls alone: {k['seconds'] / mm['seconds']:.2f}×  (target ≤ 2×)")
        peak = k.get("extra_cuda_mb", k["extra_rss_mb"])
        print(f"kernel extra memory: {max(peak, k['extra_rss_mb']):.0f} MB  (target < 2048 MB)")
    ref = results.get("pdist", {})
    if "seconds" in k and "seconds" in ref:
        print(
            f"pdist / kernel time: {ref['seconds'] / k['seconds']:.1f}×  (target ≥ 8×); "
            f"|difference| = {abs(ref['value'] - k['value']):.2e}"
        )
    est = results["estimate"]
    if "value" in est and "value" in k:
        err = abs(est["value"] - k["value"])
        se = est["standard_error"]
        print(
            f"estimate error: {err:.4f}"
            + (f" = {err / se:.2f} standard errors" if se > 0 else " (the sample held every row: exact)")
        )


if __name__ == "__main__":
    main()
