"""Training steps/s on CPU for the default config, side by side in one process:
bare `Trainer.step` vs. the same step plus `RunWriter.log_metrics` (the logging overhead), and the
objectives' share (nt_xent + batch_stats) of a step.

    python bench/bench_train_steps.py [--steps 100] [--threads 1] [--config training/configs/X.toml]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runformat.writer import RunWriter  # noqa: E402
from training.config import load_config  # noqa: E402
from training.data import PairData  # noqa: E402
from training.objectives import batch_stats, nt_xent  # noqa: E402
from training.train import Trainer  # noqa: E402


def rate(fn, steps: int) -> float:
    fn(0)  # warm-up
    t = time.perf_counter()
    for i in range(steps):
        fn(i + 1)
    return steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--config", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    data = PairData(cfg.data, cfg.seed)
    trainer = Trainer(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    batches = [data.sample_batch(cfg.batch_size, g) for _ in range(8)]

    bare = rate(lambda i: trainer.step(*batches[i % 8], i), args.steps)
    with tempfile.TemporaryDirectory() as root, RunWriter(root, "bench", {"description": "bench"}) as w:
        logged = rate(lambda i: w.log_metrics(i, trainer.step(*batches[i % 8], i)), args.steps)
    sampling = rate(lambda i: data.sample_batch(cfg.batch_size, g), args.steps)
    z = torch.randn(cfg.batch_size, cfg.head.out_dim), torch.randn(cfg.batch_size, cfg.head.out_dim)

    def objective(i):
        loss, logits, targets = nt_xent(*z, 0.1, return_logits=True)
        batch_stats(logits, targets, 0.1, loss)

    obj = rate(objective, args.steps)
    print(f"config: {args.config or 'defaults'}  batch {cfg.batch_size}  threads {args.threads}")
    print(f"bare step            {bare:8.1f} steps/s")
    print(f"step + log_metrics   {logged:8.1f} steps/s   (ratio {logged / bare:.3f})")
    print(f"batch sampling+augm  {sampling:8.1f} /s       (share of a step {bare / sampling:.3f})")
    print(f"nt_xent+batch_stats  {obj:8.1f} /s       (share of a step {bare / obj:.3f})")


if __name__ == "__main__":
    main()
