"""RunWriter overhead on a real training step loop, and the same snapshot through TensorBoard.

    python bench/bench_writer.py [--rounds 10] [--block 100] [--n 10000] [--d 256]

Times one step loop in interleaved blocks — no logging against RunWriter (metrics every step + an N×d
snapshot every 100 steps), then no logging against TensorBoard (add_scalar every step + add_embedding every
100 steps) — and prints the overheads and the time and bytes per snapshot. First, on the writer thread's side:
what the faithful-storage check (runformat.writer STORAGE_FLOATS) costs next to the bare float16 cast.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from runformat.fields import encode_field as _encode_field  # noqa: E402
from runformat.writer import RunWriter  # noqa: E402


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


def timed_block(step, steps: int, log=None, snapshot=None, first_step: int = 0) -> tuple[float, float]:
    """Wall time of `steps` training steps, and the part of it spent inside the logging calls. Both arms
    compute the probe embeddings once per block: that forward pass is the user's, not the writer's."""
    inside = 0.0
    t0 = time.perf_counter()
    for i in range(first_step, first_step + steps):
        loss = step()
        z = snapshot() if i == first_step and snapshot is not None else None
        if log is not None:
            s0 = time.perf_counter()
            log(i, loss, z)
            inside += time.perf_counter() - s0
    return time.perf_counter() - t0, inside


def compare(name: str, make_logger, rounds: int, block: int, n: int, d: int) -> dict:
    """Interleave plain and logged blocks of `block` steps (ABBA order) on one model, so slow drifts of a
    shared machine cancel; the overhead is the median over rounds of logged/plain − 1."""
    step, snapshot = make_loop(n, d)
    timed_block(step, 20)  # warm-up
    work = tempfile.mkdtemp(prefix=f"bench-{name}-")
    log, close = make_logger(work)
    ratios, inside_total, plain_total, logged_total, next_step = [], 0.0, 0.0, 0.0, 0
    for r in range(rounds):
        order = ("plain", "logged") if r % 2 == 0 else ("logged", "plain")
        times = {}
        for mode in order:
            if mode == "plain":
                times[mode], _ = timed_block(step, block, snapshot=snapshot)
            else:
                times[mode], inside = timed_block(step, block, log, snapshot, first_step=next_step)
                inside_total += inside
                next_step += block
        ratios.append(times["logged"] / times["plain"] - 1)
        plain_total += times["plain"]
        logged_total += times["logged"]
    c0 = time.perf_counter()
    close()
    close_s = time.perf_counter() - c0
    size = folder_bytes(work)
    shutil.rmtree(work)
    return {
        "median": statistics.median(ratios),
        "total": logged_total / plain_total - 1,
        "inside_s": inside_total,
        "plain_s": plain_total,
        "close_s": close_s,
        "bytes": size,
        "step_ms": plain_total / (rounds * block) * 1e3,
    }


def runwriter_logger(work: str):
    writer = RunWriter(work, "bench", handle_sigterm=False)

    def log(i, loss, z):
        writer.log_metrics(i, {"loss/total": loss, "lr": 1e-4})
        if z is not None:
            writer.log_snapshot(i, embeddings=z, labels=torch.arange(len(z)) % 10)

    return log, writer.close


def tensorboard_logger(work: str):
    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(os.path.join(work, "tb"))

    def log(i, loss, z):
        tb.add_scalar("loss/total", loss.item(), i)
        tb.add_scalar("lr", 1e-4, i)
        if z is not None:
            tb.add_embedding(z, metadata=(torch.arange(len(z)) % 10).tolist(), global_step=i)

    return log, tb.close


def encode_cost(n: int, d: int, repeats: int = 5) -> None:
    """Writer-thread time to encode one snapshot field: the storage rule vs a bare cast, side by side."""
    x = (np.random.default_rng(0).standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    best = {}
    for name, fn in (
        ("bare float16 cast", lambda: x.astype(np.float16)),
        ("storage rule (check + cast + non-finite count)", lambda: _encode_field("embeddings", x)),
    ):
        best[name] = min(timed(fn) for _ in range(repeats))
    bare, rule = best.values()
    print(
        f"encode {n}x{d} float32 on the writer thread: bare float16 cast {bare * 1e3:.1f} ms, storage rule "
        f"{rule * 1e3:.1f} ms ({rule / bare:.1f}x; stored as {_encode_field('embeddings', x)[1]['dtype']})"
    )


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10, help="logged blocks; each has one snapshot")
    ap.add_argument("--block", type=int, default=100, help="steps per block (= snapshot interval)")
    ap.add_argument("--tb-rounds", type=int, default=4)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--encode-only", action="store_true", help="only the storage-rule cost")
    args = ap.parse_args()
    encode_cost(100_000, 128)
    if args.encode_only:
        return
    rw = compare("runwriter", runwriter_logger, args.rounds, args.block, args.n, args.d)
    tb = compare("tensorboard", tensorboard_logger, args.tb_rounds, args.block, args.n, args.d)
    print(
        f"step loop: MLP 512-1024-1024-{args.d}, batch 256, NT-Xent, AdamW; step ≈ {rw['step_ms']:.1f} ms; "
        f"metrics every step, one {args.n}x{args.d} snapshot every {args.block} steps"
    )
    for name, r, rounds in (("RunWriter", rw, args.rounds), ("TensorBoard", tb, args.tb_rounds)):
        print(
            f"{name:12s} overhead: median over {rounds} rounds {100 * r['median']:+.2f} %, all blocks "
            f"{100 * r['total']:+.2f} %; inside the logging calls {r['inside_s'] / r['plain_s'] * 100:.2f} % "
            f"of the plain loop ({r['inside_s'] / rounds * 1e3:.1f} ms per {args.block} steps); "
            f"close {r['close_s']:.2f} s; on disk {r['bytes'] / rounds / 1e6:.1f} MB per snapshot"
        )
    print(
        f"per snapshot: time in log_snapshot+metrics vs add_embedding+scalars "
        f"{rw['inside_s'] / args.rounds * 1e3:.1f} ms vs {tb['inside_s'] / args.tb_rounds * 1e3:.0f} ms "
        f"({(tb['inside_s'] / args.tb_rounds) / (rw['inside_s'] / args.rounds):.0f}x); bytes "
        f"{(tb['bytes'] / args.tb_rounds) / (rw['bytes'] / args.rounds):.1f}x smaller with RunWriter "
        f"(float16 .npy vs TensorBoard's text TSV)"
    )


if __name__ == "__main__":
    main()
