"""RunWriter overhead on a real training step loop, and the same snapshot through TensorBoard.

    python bench/bench_writer.py [--steps 1000] [--n 10000] [--d 256]

Runs one step loop three times side by side — no logging, RunWriter (metrics every step + an N×d snapshot
every 100 steps), TensorBoard add_scalar every step + add_embedding every 100 steps — and prints the ratios.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training import RunWriter  # noqa: E402


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def make_loop(n: int, d: int):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, d))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(256, 512)
    probe = torch.randn(n, 512)

    def step():
        z_a, z_b = model(x + 0.1 * torch.randn_like(x)), model(x + 0.1 * torch.randn_like(x))
        logits = F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T / 0.1
        loss = F.cross_entropy(logits, torch.arange(len(x)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def snapshot():
        with torch.no_grad():
            return model(probe)

    return step, snapshot


def run(mode: str, steps: int, n: int, d: int, workdir: str) -> dict:
    step, snapshot = make_loop(n, d)
    writer = tb = None
    if mode == "runwriter":
        writer = RunWriter(workdir, "bench")
    elif mode == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(os.path.join(workdir, "tb"))
    snap_time = 0.0
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step()
        if writer is not None:
            writer.log_metrics(i, {"loss/total": loss, "lr": 1e-4})
        if tb is not None:
            tb.add_scalar("loss/total", loss.item(), i)
            tb.add_scalar("lr", 1e-4, i)
        if i % 100 == 0 and mode != "none":
            z = snapshot()
            s0 = time.perf_counter()
            if writer is not None:
                writer.log_snapshot(i, embeddings=z, labels=torch.arange(n) % 10)
            else:
                tb.add_embedding(z, metadata=(torch.arange(n) % 10).tolist(), global_step=i)
            snap_time += time.perf_counter() - s0
    loop = time.perf_counter() - t0
    c0 = time.perf_counter()
    if writer is not None:
        writer.close()
    if tb is not None:
        tb.close()
    return {"loop_s": loop, "close_s": time.perf_counter() - c0, "snapshot_call_s": snap_time,
            "bytes": folder_bytes(workdir)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    results = {}
    for mode in ("none", "runwriter", "tensorboard", "none", "runwriter"):  # repeat to see the noise
        work = tempfile.mkdtemp(prefix=f"bench-{mode}-")
        r = run(mode, args.steps, args.n, args.d, work)
        shutil.rmtree(work)
        results.setdefault(mode, []).append(r)
        print(f"{mode:12s} loop {r['loop_s']:7.2f} s  snapshot calls {r['snapshot_call_s']*1e3:8.1f} ms  "
              f"close {r['close_s']:5.2f} s  on disk {r['bytes']/1e6:7.1f} MB", flush=True)
    base = min(r["loop_s"] for r in results["none"])
    rw = min(r["loop_s"] for r in results["runwriter"])
    tb = results["tensorboard"][0]
    print(f"\nsteps={args.steps}, snapshot {args.n}x{args.d} every 100 steps, "
          f"{args.steps // 100} snapshots, step ≈ {base / args.steps * 1e3:.1f} ms")
    print(f"RunWriter overhead on the loop: {100 * (rw / base - 1):+.2f} %  (budget < 2 %)")
    print(f"TensorBoard overhead on the loop: {100 * (tb['loop_s'] / base - 1):+.2f} %")
    print(f"time inside log_snapshot vs add_embedding: "
          f"{results['runwriter'][0]['snapshot_call_s']:.3f} s vs {tb['snapshot_call_s']:.3f} s "
          f"({tb['snapshot_call_s'] / max(results['runwriter'][0]['snapshot_call_s'], 1e-9):.0f}x)")
    print(f"bytes on disk RunWriter vs TensorBoard: {results['runwriter'][0]['bytes']/1e6:.1f} MB vs "
          f"{tb['bytes']/1e6:.1f} MB ({tb['bytes'] / results['runwriter'][0]['bytes']:.1f}x)")


if __name__ == "__main__":
    main()
