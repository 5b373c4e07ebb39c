"""DDP on 2 CPU processes (gloo): the gathered-negatives loss gives the exact single-process gradient, and a
short run writes one readable run with the whole probe set."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diagnostics import open_run
from training.config import load_config
from training.train import Trainer, train

SMALL = ["model.hidden=32", "model.latent_dim=8", "head.width=16", "head.out_dim=8", "batch_size=16",
         "data.probe_size=50", "snapshot_every=3", "head.norm=layernorm", "contrastive.warmup_steps=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)


def _batch(B=16):
    g = torch.Generator().manual_seed(5)
    return torch.rand(B, 64, generator=g), torch.rand(B, 64, generator=g)


def _grads(trainer: Trainer, x_a, x_b) -> dict:
    backward, metrics, _ = trainer.losses(x_a, x_b, step=0)
    backward.backward()
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters()}, metrics["loss/contrastive"]


def _grad_worker(rank, port, out, overrides):
    _init(rank, port)
    try:
        trainer = Trainer(load_config(None, SMALL + overrides), torch.device("cpu"))
        x_a, x_b = _batch()
        half = slice(rank * 8, rank * 8 + 8)
        grads, loss = _grads(trainer, x_a[half], x_b[half])
        torch.save({"grads": grads, "loss": loss}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("overrides", [[], ["contrastive.objective=hard_negative"]])
def test_ddp_gradient_equals_single_process(tmp_path, overrides):
    torch.set_num_threads(1)
    mp.spawn(_grad_worker, args=(_free_port(), str(tmp_path), overrides), nprocs=2, join=True)
    reference = Trainer(load_config(None, SMALL + overrides), torch.device("cpu"))
    ref_grads, ref_loss = _grads(reference, *_batch())
    for rank in (0, 1):
        got = torch.load(os.path.join(tmp_path, f"rank{rank}.pt"), weights_only=True)
        assert got["loss"] == pytest.approx(ref_loss, rel=1e-5)  # the global-batch loss on every rank
        for name, g in ref_grads.items():
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)


def _train_worker(rank, port, runs, overrides):
    _init(rank, port)
    try:
        cfg = load_config(None, SMALL + ["steps=7"] + overrides)
        train(cfg, runs, "ddp", checkpoint_dir=os.path.join(runs, ".ck"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("overrides", [[], ["contrastive.objective=moco", "contrastive.queue_size=32"]])
def test_ddp_run_writes_one_run(tmp_path, overrides):
    mp.spawn(_train_worker, args=(_free_port(), str(tmp_path), overrides), nprocs=2, join=True)
    run = open_run(str(tmp_path / "ddp"))
    assert run.status == "finished" and run.info["world_size"] == 2
    m = run.metrics().dropna(subset=["loss/total"])
    assert m["step"].tolist() == list(range(7)) and np.isfinite(m["loss/total"]).all()
    assert run.snapshot_steps() == [3, 6, 7]
    s = run.snapshot(7)
    assert s.n == 50 and s.images.shape == (50, 8, 8)  # both ranks' shards, gathered on rank 0
    assert np.array_equal(s.metadata["sample_id"].to_numpy(), np.sort(s.metadata["sample_id"].to_numpy()))
    assert os.path.isfile(tmp_path / ".ck" / "ddp.pt")
