"""Train a contrastive autoencoder/VAE and write a run.

    python -m training.train --config training/configs/healthy.toml [--set contrastive.temperature=0.2]
    torchrun --nproc_per_node=2 -m training.train --config ...     # DDP: negatives gathered across ranks

Loss = reconstruction (+ KL for the VAE) + λ(step)·contrastive, λ warmed up linearly from 0 (training/trainer.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from runformat import distributed as ddp
from runformat.reader import open_run
from runformat.writer import RunWriter

from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, load_config, to_dict, validate
from .crossmodal import CaptionData, CrossModalTrainer
from .data import PairData
from .trainer import Trainer


def setup_distributed() -> torch.device:
    """Initialise torch.distributed under torchrun; return this process's device."""
    cuda = torch.cuda.is_available()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not ddp.is_distributed():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def resolve_device(cfg: TrainConfig) -> torch.device:
    device = setup_distributed()
    if cfg.device == "cpu":
        return torch.device("cpu")
    if cfg.device == "cuda" and device.type != "cuda":
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    return device


def default_name(stem: str) -> str:
    t = torch.tensor([time.time()], dtype=torch.float64)
    if ddp.is_distributed():
        dist.broadcast(t, 0)  # every rank must write to the same run
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(float(t)))}"


def train(
    cfg: TrainConfig,
    runs_dir: str = "runs",
    name: str | None = None,
    resume: bool = False,
    checkpoint_dir: str | None = None,
) -> str:
    """Train `cfg` and write the run `runs_dir/name`; returns the run path. Raises ValueError on a bad
    config before anything is written."""
    validate(cfg)
    device = resolve_device(cfg)
    world, rank = ddp.world_size(), ddp.rank()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size: {cfg.batch_size} is not divisible by the {world} processes")
    cross_modal = cfg.model.kind == "cvae"
    data = CaptionData(cfg.data, cfg.seed) if cross_modal else PairData(cfg.data, cfg.seed)
    validate(cfg, dataset_size=data.n_train)
    name = name or default_name("run")
    checkpoint_dir = checkpoint_dir or os.path.join(runs_dir, ".checkpoints")
    ckpt_path = os.path.join(checkpoint_dir, f"{name}.pt")
    trainer = CrossModalTrainer(cfg, device, data) if cross_modal else Trainer(cfg, device)
    generator = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    start, last_metric, last_snapshot = 0, -1, -1
    if resume:
        if not os.path.isfile(ckpt_path):
            raise ValueError(f"resume: no checkpoint at {ckpt_path}")
        start = trainer.load_state(load_checkpoint(ckpt_path, map_location=device), generator)
        last_metric, last_snapshot = _logged_so_far(runs_dir, name)
    probe = data.probe(cfg.seed).shard(rank, world)
    probe_a, probe_b = probe.view_a.to(device), probe.view_b.to(device)
    eval_images = data.eval_images().to(device)
    b_local = cfg.batch_size // world

    def snapshot(writer: RunWriter, step: int) -> dict:
        """Log the probe set; return the held-out reconstruction metrics to log with this step."""
        if step <= last_snapshot:  # already in the run (resumed)
            return {}
        out = trainer.embed(probe_a, probe_b)
        writer.log_snapshot(
            step,
            **out,
            labels=probe.labels,
            metadata=probe.metadata,
            images=probe.images,
            positive_images=probe.positive_images,
        )
        evals = trainer.evaluate(eval_images)
        grid = trainer.generated_grid()
        if grid is not None:
            writer.log_generated(grid)
        return evals

    description = cfg.description
    with RunWriter(runs_dir, name, to_dict(cfg), resume=resume, description=description) as writer:
        for step in range(start, cfg.steps):
            evals = snapshot(writer, step) if step % cfg.snapshot_every == 0 and step > 0 else {}
            x_a, x_b = data.sample_batch(b_local, generator)
            metrics = trainer.step(x_a.to(device, non_blocking=True), x_b.to(device, non_blocking=True), step)
            metrics.update(evals)
            if step > last_metric:
                writer.log_metrics(step, metrics)
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
                _checkpoint(trainer, ckpt_path, step + 1, generator)
        evals = snapshot(writer, cfg.steps)
        if evals:
            writer.log_metrics(cfg.steps, evals)
        _checkpoint(trainer, ckpt_path, cfg.steps, generator)
    return writer.path


def _checkpoint(trainer: Trainer, path: str, next_step: int, generator: torch.Generator) -> None:
    state = trainer.state(next_step, generator)  # a collective under DDP: every rank builds it
    if ddp.master_process():
        save_checkpoint(path, state)


def _logged_so_far(runs_dir: str, name: str) -> tuple[int, int]:
    """Last training-metric step and snapshot step already in the run, so a resumed run logs no step twice."""
    run = open_run(os.path.join(runs_dir, name))
    m = run.metrics()
    m = m.dropna(subset=["loss/total"]) if "loss/total" in m.columns else m.iloc[:0]
    steps = run.snapshot_steps()
    return (int(m["step"].max()) if len(m) else -1), (max(steps) if steps else -1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="TOML or JSON config (training/configs/*.toml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. contrastive.temperature=0.2 (repeatable)",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--name", help="run name (default: config name + timestamp)")
    p.add_argument("--resume", action="store_true", help="continue the run NAME from its last checkpoint")
    p.add_argument("--checkpoint-dir", help="default: RUNS_DIR/.checkpoints")
    args = p.parse_args(argv)
    if args.resume and not args.name:
        p.error("--resume needs --name")
    try:
        cfg = load_config(args.config, args.overrides)
        stem = Path(args.config).stem if args.config else "run"
        setup_distributed()
        name = args.name or default_name(stem)
        path = train(cfg, args.runs_dir, name, args.resume, args.checkpoint_dir)
        if ddp.master_process():
            print(path)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if ddp.is_distributed():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
