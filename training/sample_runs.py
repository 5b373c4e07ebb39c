"""Regenerate sample_runs/ from training/configs/*.toml, deterministically, and print what each run shows.

    python -m training.sample_runs [--out sample_runs] [--only NAME ...] [--jobs 2]

Each run trains in its own process on one CPU thread (the result does not depend on --jobs). Afterwards the
geometry of the first/middle/last snapshot is printed: effective rank (Roy & Vetterli 2007: exp of the
entropy of the normalised singular values), mean pairwise cosine, uniformity (Wang & Isola 2020, t = 2),
alignment, and kNN label accuracy. docs/training.md quotes these numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"
SAMPLE_RUNS = [
    "healthy-infonce-tau0.1",
    "complete-collapse-negatives-removed",
    "dimensional-collapse-bn-no-negatives",
    "high-temperature-tau1",
    "recon-only-lambda0",
    "moco-queue-k1024",
    "hard-negatives-beta1",
    "sequence-temporal-vae",
    "crossmodal-clip-lambda0",
    "crossmodal-clip-lambda1",
    "curriculum-beta-anneal",
    "adaptive-temperature-entropy",
]
GENERATION = ["eval/recon_mse", "gen/conditional_accuracy", "gen/diversity", "gen/frechet_distance"]
CROSS_MODAL = [
    "modality_gap",
    "cross_modal_recall@1",
    "cross_modal_recall@10",
    "uniformity_a",
    "uniformity_b",
    "effective_rank_a",
    "effective_rank_b",
]


def geometry(run, step: int) -> dict:
    """The numbers the dashboard shows for a snapshot: the diagnostics engine's (its kNN on the deterministic
    probe split, k = 200), with the cross-modal numbers for a paired snapshot."""
    from diagnostics.measure.engine import measure_snapshot
    from runformat.metrics_lines import temperature_for

    numbers, _ = measure_snapshot(run.snapshot(step), temperature_for(run, step))
    return {key: math.nan if value is None else value for key, value in numbers.items()}


def _train_one(name: str, out: str, checkpoints: str) -> str:
    import torch

    torch.set_num_threads(1)
    from .config import load_config
    from .train import train

    cfg = load_config(str(CONFIGS / f"{name}.toml"))
    return train(cfg, out, name, resume=False, checkpoint_dir=checkpoints)


def summarise(out: str, names: list[str]) -> None:
    from diagnostics import open_run

    print(
        f"{'run':40s} {'step':>5s} {'eff_rank':>8s} {'mean_cos':>8s} {'std·√d':>7s} {'unif':>7s} {'align':>6s} "
        f"{'knn':>5s} {'recon':>7s}"
    )
    for name in names:
        run = open_run(os.path.join(out, name))
        steps = run.snapshot_steps()
        m = run.metrics()
        for step in (steps[0], steps[len(steps) // 2], steps[-1]):
            g = geometry(run, step)
            recon = m.loc[m["step"] == step, "eval/recon_mse"].dropna()
            print(
                f"{name:40s} {step:5d} {g['effective_rank']:8.2f} {g['mean_cos']:8.3f} {g['std_ratio']:7.3f} "
                f"{g['uniformity']:7.3f} {g['alignment']:6.3f} {g['knn_accuracy']:5.3f} "
                f"{float(recon.iloc[-1]) if len(recon) else float('nan'):7.4f}"
            )
        print(f"{'':40s} status={run.status}")
    summarise_generative(out, names)


def summarise_generative(out: str, names: list[str]) -> None:
    """For runs that generate: the gen/* metrics and the cross-modal numbers at the last snapshot."""
    from diagnostics import open_run

    for name in names:
        run = open_run(os.path.join(out, name))
        m = run.metrics()
        if "gen/conditional_accuracy" not in m.columns:
            continue
        step = run.snapshot_steps()[-1]
        last = m[m["step"] == step]
        cross = geometry(run, step)
        print(f"{name} step {step}: " + "  ".join(f"{k}={float(last[k].dropna().iloc[-1]):.4g}" for k in GENERATION))
        print(f"{'':{len(name)}s}          " + "  ".join(f"{k}={cross[k]:.3f}" for k in CROSS_MODAL))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m training.sample_runs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="sample_runs")
    p.add_argument("--only", nargs="*", default=None, help="regenerate these runs only")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--summary-only", action="store_true", help="print the numbers of existing runs")
    args = p.parse_args(argv)
    names = args.only or SAMPLE_RUNS
    unknown = [n for n in names if n not in SAMPLE_RUNS]
    if unknown:
        sys.exit(f"error: --only: unknown sample run(s) {unknown}; known: {SAMPLE_RUNS}")
    if not args.summary_only:
        os.makedirs(args.out, exist_ok=True)
        for name in names:  # regenerate from scratch: a sample run is never resumed
            shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
        with tempfile.TemporaryDirectory() as checkpoints, ProcessPoolExecutor(args.jobs) as pool:
            for path in pool.map(_train_one, names, [args.out] * len(names), [checkpoints] * len(names)):
                print(path, flush=True)
    summarise(args.out, names)


if __name__ == "__main__":
    main()
