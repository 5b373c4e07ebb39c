"""The one-pass snapshot engine against today's per-metric path, torch.pdist and its own floor, side by side.

    python bench/bench_engine.py                       # N = 5k, 20k, 50k, 100k × 128 (slow: the per-metric path)
    python bench/bench_engine.py --n 20000 --skip-pdist
    python bench/bench_engine.py --per-metric-max 50000  # skip the per-metric path above 50k rows
    python bench/bench_engine.py --n 20000,50000 --per-metric-max 0 --skip-pdist --repeat 2

Every measurement runs in its own subprocess (its peak memory, VmHWM, is its own), after a warm-up on 4,096
rows. With --repeat R the arms alternate R times and each keeps its fastest run: on a shared, loaded box the
load drifts between two subprocesses a minute apart, and the minimum is the run least disturbed. Besides wall
seconds each arm reports its process CPU seconds (time.process_time: the time it held a core, not the time it
waited for one), a second view of the same ratio that load changes less.

Data: 10-class clusters, y = z + noise (top-1 ≈ 0.75 at 5k, lower at larger N: ranks and top-k have
work), labels, τ = 0.1, float16 as snapshots store it.
  engine      diagnostics.measure.engine.measure (every number and per-row array of a record)
  per_metric  summary.snapshot_summary: the per-metric functions as the CLI called them before the engine
  matmuls     the floor: z·zᵀ and z·z⁺ᵀ as full tiled products (2048-row tiles), nothing else
  pdist       torch.pdist for uniformity alone (N(N−1)/2 distances in memory)
Target: engine ≤ 1.5× matmuls at 50k, extra memory < 2 GB.
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


def data(n: int, d: int):
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    centres = rng.standard_normal((10, d)) * 0.6
    z = centres[labels] + rng.standard_normal((n, d)) / math.sqrt(d) * 4
    y = z + 2.0 * rng.standard_normal((n, d)) / math.sqrt(d) * 4
    return z.astype(np.float16), y.astype(np.float16), labels


def body(method: str, z, y, labels, out: dict) -> None:
    import torch

    from diagnostics.measure import _tensor

    if method == "engine":
        from diagnostics.measure.engine import measure

        numbers, _ = measure(z, y, labels, temperature=0.1)
        out.update(
            {k: numbers.get(k) for k in ("uniformity", "infonce", "top1", "roc_auc", "knn_accuracy", "estimated")}
        )
    elif method == "per_metric":
        from diagnostics.reference.reference_summary import snapshot_summary
        from runformat.reader import Snapshot

        s = snapshot_summary(Snapshot(step=0, embeddings=z, positives=y, labels=labels), temperature=0.1)
        out.update({k: s.get(k) for k in ("uniformity", "infonce", "top1", "roc_auc", "knn_accuracy")})
    elif method == "matmuls":
        dev = _tensor.best_device()
        zn = _tensor.normalize(_tensor.as_matrix(z, "z", dev))
        yn = _tensor.normalize(_tensor.as_matrix(y, "y", dev))
        for other in (zn, yn):
            for _, _, tile in _tensor.similarity_blocks(zn, other, rows=2048):  # tile: 2048×N
                del tile
    elif method == "pdist":
        zn = torch.nn.functional.normalize(torch.from_numpy(z).float(), dim=1)
        out["uniformity"] = torch.pdist(zn).pow(2).mul(-2).exp().mean().log().item()
    else:
        raise SystemExit(f"--worker: unknown method {method!r}")


def worker(method: str, n: int, d: int) -> dict:
    import torch

    z, y, labels = data(n, d)
    out: dict = {"method": method, "n": n, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    body(method, z[:4096], y[:4096], labels[:4096], {})  # thread pools, packing buffers, allocator
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base_cuda = torch.cuda.memory_allocated() if cuda else 0
    before = rss_mb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    body(method, z, y, labels, out)
    if cuda:
        torch.cuda.synchronize()
        out["extra_cuda_mb"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["extra_rss_mb"] = rss_mb("VmHWM") - before
    return out


def run_worker(method: str, n: int, d: int, timeout: float | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--n", str(n), "--d", str(d)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"method": method, "error": f"over {timeout:.0f} s, stopped"}
    if proc.returncode != 0:
        return {"method": method, "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    return f"{v:.6f}" if isinstance(v, float) else str(v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="5000,20000,50000,100000", help="comma-separated row counts")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--skip-pdist", action="store_true")
    p.add_argument("--pdist-max", type=int, default=50_000, help="pdist needs 2N² bytes: skip above this N")
    p.add_argument("--per-metric-max", type=int, default=100_000, help="skip the per-metric path above this N")
    p.add_argument("--timeout", type=float, default=None, help="stop any one measurement after this many s")
    p.add_argument("--repeat", type=int, default=1, help="alternate the arms this many times, keep each one's fastest")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, int(args.n), args.d)))
        return
    for n in (int(v) for v in args.n.split(",")):
        methods = ["matmuls", "engine"]
        methods += ["per_metric"] if n <= args.per_metric_max else []
        methods += [] if args.skip_pdist or n > args.pdist_max else ["pdist"]
        results: dict = {}
        loads = [os.getloadavg()[0]]
        for _ in range(max(1, args.repeat)):
            for m in methods:
                r, best = run_worker(m, n, args.d, args.timeout), results.get(m)
                if best is None or "seconds" not in best or r.get("seconds", math.inf) < best["seconds"]:
                    results[m] = r
            loads.append(os.getloadavg()[0])
        floor = results["matmuls"].get("seconds")
        cpu_floor = results["matmuls"].get("cpu_seconds")
        print(
            f"\nN={n:,}  d={args.d}  device={results['matmuls'].get('device')}  repeat={args.repeat}  "
            f"load average {min(loads):.1f}–{max(loads):.1f}"
        )
        print(
            f"{'method':<12}{'seconds':>9}{'× matmuls':>11}{'cpu s':>9}{'× (cpu)':>9}{'extra RSS MB':>14}"
            f"{'extra CUDA MB':>15}  values"
        )
        for m, r in results.items():
            if "error" in r:
                print(f"{m:<12} failed: {r['error']}")
                continue
            vals = "  ".join(
                f"{k}={fmt(r[k])}"
                for k in ("uniformity", "infonce", "top1", "roc_auc", "knn_accuracy", "estimated")
                if k in r
            )
            ratio = r["seconds"] / floor if floor else math.nan
            cpu_ratio = r["cpu_seconds"] / cpu_floor if cpu_floor else math.nan
            print(
                f"{m:<12}{r['seconds']:>9.2f}{ratio:>10.2f}×{r['cpu_seconds']:>9.2f}{cpu_ratio:>8.2f}×"
                f"{r['extra_rss_mb']:>14.0f}"
                f"{r.get('extra_cuda_mb', math.nan):>15.0f}  {vals}"
            )
        for m in ("per_metric", "pdist"):
            if "seconds" in results.get(m, {}) and "seconds" in results["engine"]:
                print(f"{m} / engine: {results[m]['seconds'] / results['engine']['seconds']:.2f}×")


if __name__ == "__main__":
    main()
