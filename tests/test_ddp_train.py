"""DDP on 2 CPU processes (gloo): the gathered-negatives loss gives the exact single-process gradient, and a
short run writes one readable run with the whole probe set."""

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from browser import free_port

from diagnostics import open_run
from training.config import load_config
from training.train import train
from training.trainer import Trainer

SMALL = [
    "model.hidden=32",
    "model.latent_dim=8",
    "head.width=16",
    "head.out_dim=8",
    "batch_size=16",
    "data.probe_size=50",
    "snapshot_every=3",
    "head.norm=layernorm",
    "contrastive.warmup_steps=0",
]


def _init(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank)
    )
    dist.init_process_group("gloo", rank=rank, world_size=2)


def _batch(B=16):
    g = torch.Generator().manual_seed(5)
    return torch.rand(B, 64, generator=g), torch.rand(B, 64, generator=g)


def _grads(trainer: Trainer, x_a, x_b) -> dict:
    backward, metrics, _ = trainer.losses(x_a, x_b, step=0)
    backward.backward()
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters()}, metrics["loss/contrastive"]


OBJECTIVES = {"nt_xent": [], "hard_negative": ["contrastive.objective=hard_negative"]}


def _grad_worker(rank, port, out):
    _init(rank, port)
    try:
        for name, overrides in OBJECTIVES.items():
            trainer = Trainer(load_config(None, SMALL + overrides), torch.device("cpu"))
            x_a, x_b = _batch()
            half = slice(rank * 8, rank * 8 + 8)
            grads, loss = _grads(trainer, x_a[half], x_b[half])
            torch.save({"grads": grads, "loss": loss}, os.path.join(out, f"{name}-rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(400)
def test_ddp_gradient_equals_single_process(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_grad_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for name, overrides in OBJECTIVES.items():
        reference = Trainer(load_config(None, SMALL + overrides), torch.device("cpu"))
        ref_grads, ref_loss = _grads(reference, *_batch())
        for rank in (0, 1):
            got = torch.load(os.path.join(tmp_path, f"{name}-rank{rank}.pt"), weights_only=True)
            assert got["loss"] == pytest.approx(ref_loss, rel=1e-5)  # the global-batch loss on every rank
            for param, g in ref_grads.items():
                torch.testing.assert_close(got["grads"][param], g, rtol=1e-4, atol=1e-6, msg=f"{name} {param}")


RUNS = {"ddp": [], "ddp-moco": ["contrastive.objective=moco", "contrastive.queue_size=32"]}


def _train_worker(rank, port, runs):
    _init(rank, port)
    try:
        for name, overrides in RUNS.items():
            cfg = load_config(None, SMALL + ["steps=7"] + overrides)
            train(cfg, runs, name, checkpoint_dir=os.path.join(runs, ".ck"))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(400)
def test_ddp_run_writes_one_run(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_train_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for name in RUNS:
        _check_run(tmp_path, name)


def _check_run(tmp_path, name):
    run = open_run(str(tmp_path / name))
    assert run.status == "finished" and run.info["world_size"] == 2
    m = run.metrics().dropna(subset=["loss/total"])
    assert m["step"].tolist() == list(range(7)) and np.isfinite(m["loss/total"]).all()
    assert run.snapshot_steps() == [3, 6, 7]
    s = run.snapshot(7)
    assert s.n == 50 and s.images.shape == (50, 8, 8)  # both ranks' shards, gathered on rank 0
    assert np.array_equal(s.metadata["sample_id"].to_numpy(), np.sort(s.metadata["sample_id"].to_numpy()))
    assert os.path.isfile(tmp_path / ".ck" / f"{name}.pt")
