"""The engine on CUDA against the same record on CPU (bench/gpu_check.sh runs it on a lent GPU; never run here).

    python bench/gpu_engine_check.py [--n 50000,200000,1000000] [--cpu-max 200000] [--d 128]

For each N: one record of clustered float32 data (y = z + noise, 10 labels, τ = 0.1) measured by
diagnostics.measure.engine.measure on CUDA (timed after a warm-up) and, up to --cpu-max rows, on CPU (1M rows on CPU
is ~1 h of matmuls: CUDA only, checked for finite numbers). Numbers agree when |cuda - cpu| <= 2e-3 * max(1,
|cpu|): float32 sums of N terms in a different order differ by ~N * eps32 * |mean| relative at worst, 1M *
6e-8 = 6e-2 in the worst case but ~sqrt(N) * eps32 ~ 6e-5 for these random-order sums; 2e-3 leaves room for
the exp/log of the uniformity kernel. Above the engine's exact_limit (100k) both devices draw the same seeded
anchors, so the estimates are comparable. Prints one line per N and "ALL OK" or the keys that differ.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diagnostics.measure.engine import EngineConfig, measure  # noqa: E402

TOL = 2e-3


def data(n: int, d: int):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, d)).astype(np.float32)
    labels = rng.integers(0, 10, n)
    z = centres[labels] + 0.8 * rng.standard_normal((n, d)).astype(np.float32)
    return z, z + 0.3 * rng.standard_normal((n, d)).astype(np.float32), labels


def timed(device: str, z, y, labels):
    cfg = EngineConfig(device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    numbers, arrays = measure(z, y, labels, temperature=0.1, config=cfg)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, numbers, arrays


def differences(a: dict, b: dict) -> list[str]:
    out = []
    for key, vb in b.items():
        va = a.get(key)
        if isinstance(vb, bool) or not isinstance(vb, (int, float)) or not isinstance(va, (int, float)):
            continue
        if math.isfinite(vb) and not abs(va - vb) <= TOL * max(1.0, abs(vb)):
            out.append(f"{key}: cuda {va:.6g} cpu {vb:.6g}")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", default="50000,200000,1000000")
    p.add_argument("--cpu-max", type=int, default=200_000)
    p.add_argument("--d", type=int, default=128)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check runs on a GPU (bench/gpu_check.sh)")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}; CPU threads {torch.get_num_threads()}")
    timed("cuda", *data(4096, args.d))  # warm-up: kernels, cuBLAS handles
    bad = []
    for n in (int(x) for x in args.n.split(",")):
        z, y, labels = data(n, args.d)
        t_gpu, g, g_arr = timed("cuda", z, y, labels)
        line = f"N={n:>9,} d={args.d}: cuda {t_gpu:7.2f} s"
        if n <= args.cpu_max:
            t_cpu, c, c_arr = timed("cpu", z, y, labels)
            diff = differences(g, c)
            ranks = (
                float(np.mean(g_arr["positive_rank"] == c_arr["positive_rank"]))
                if "positive_rank" in g_arr and "positive_rank" in c_arr
                else float("nan")
            )
            line += (
                f"  cpu {t_cpu:7.2f} s  ({t_cpu / t_gpu:5.1f}x)  numbers within {TOL:g}: "
                f"{'yes' if not diff else 'NO'}  positive ranks equal: {ranks:.4f}"
            )
            bad += [f"N={n} {d_}" for d_ in diff] + ([f"N={n} positive ranks {ranks:.4f}"] if ranks < 0.999 else [])
        else:
            nonfinite = [k for k, v in g.items() if isinstance(v, float) and not math.isfinite(v)]
            line += f"  (CPU skipped above {args.cpu_max:,}; non-finite numbers: {nonfinite or 'none'})"
            bad += [f"N={n} {k} non-finite" for k in nonfinite]
        print(line, flush=True)
    print("ALL OK" if not bad else "DIFFERENCES:\n  " + "\n  ".join(bad))


if __name__ == "__main__":
    main()
