"""The PyTorch Lightning callback against the real library: a tiny SimCLR model fitted on CPU."""

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed (requirements-dev.txt pins it)")

from integration_models import (  # noqa: E402
    F16_ATOL,
    F16_RTOL,
    PROBE_ROWS,
    TAU,
    Encoder,
    digits_views,  # noqa: E402
    embed_with_features,
    nt_xent,
    probe_set,
)

from diagnostics import open_run  # noqa: E402
from integrations.lightning import ContrastScopeCallback  # noqa: E402

LR = 0.05


class TinySimCLR(pl.LightningModule):
    def __init__(self, fail_at_step: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder()

    def training_step(self, batch, batch_idx):
        if self.global_step == self.hparams.fail_at_step:
            raise RuntimeError(f"diverged at step {self.global_step}")
        a, b = batch
        loss = nt_xent(self.encoder(a), self.encoder(b))
        self.log("loss/contrastive", loss)
        self.log("temperature", TAU)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def _fit(tmp_path, module, steps, every):
    torch.manual_seed(0)
    a, b, _, _ = digits_views(256)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, b), batch_size=32, shuffle=True)
    probe = probe_set()
    callback = ContrastScopeCallback(
        str(tmp_path / "runs"), "lightning-simclr", probe, embed=embed_with_features, every_n_steps=every
    )
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, loader)
    return probe


def test_fit_writes_metrics_each_step_and_probe_snapshots(tmp_path):
    module = TinySimCLR()
    probe = _fit(tmp_path, module, steps=11, every=5)
    run = open_run(str(tmp_path / "runs" / "lightning-simclr"))
    assert run.status == "finished"
    assert run.config == {"fail_at_step": None}  # the module's hparams
    m = run.metrics()
    assert m["step"].tolist() == list(range(1, 12))
    assert (m["lr"] == LR).all()
    assert (m["temperature"] == TAU).all()  # float32(0.2) written as the decimal 0.2, not 0.20000000298
    # the loss training_step returned is the loss it logged: one name per value, no `loss` copy
    assert "loss" not in m.columns and np.isfinite(m["loss/contrastive"]).all()
    assert run.snapshot_steps() == [0, 5, 10, 11]  # before training, every 5 steps, and at the end

    snap = run.snapshot(11)
    module.eval()
    with torch.no_grad():
        z, h = embed_with_features(module, probe.inputs)
        z_pos, _ = embed_with_features(module, probe.positives)
    np.testing.assert_allclose(snap.embeddings, z.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_allclose(snap.positives, z_pos.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_allclose(snap.features, h.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_array_equal(snap.labels, probe.labels.numpy())
    np.testing.assert_array_equal(snap.images, probe.images)
    np.testing.assert_array_equal(snap.positive_images, probe.positive_images)
    assert snap.embeddings.shape == (PROBE_ROWS, 8) and snap.features.shape == (PROBE_ROWS, 32)
    assert list(snap.metadata["parity"]) == list(probe.metadata["parity"])
    # the model changed between the first and the last snapshot
    assert np.abs(run.snapshot(0).embeddings - snap.embeddings).max() > 1e-2


def test_an_exception_in_fit_marks_the_run_crashed(tmp_path):
    with pytest.raises(RuntimeError, match="diverged at step 3"):
        _fit(tmp_path, TinySimCLR(fail_at_step=3), steps=10, every=2)
    run = open_run(str(tmp_path / "runs" / "lightning-simclr"))
    assert run.status == "crashed"
    assert "diverged at step 3" in run.info["error"]
    assert run.metrics()["step"].tolist() == [1, 2, 3]  # step 3's batch raised before logging anything new
    assert run.snapshot_steps() == [0, 2]


DDP_WORKER = """
import sys, torch
sys.path[:0] = [{repo!r}, {tests!r}]
import lightning.pytorch as pl
from integration_models import digits_views, embed_with_features, probe_set
from integrations.lightning import ContrastScopeCallback
from test_integrations_lightning import TinySimCLR
torch.manual_seed(0)
a, b, _, _ = digits_views(256)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, b), batch_size=32)
callback = ContrastScopeCallback({runs!r}, "ddp", probe_set(), embed=embed_with_features, every_n_steps=3)
trainer = pl.Trainer(max_steps=4, accelerator="cpu", devices=2, strategy="ddp", callbacks=[callback], logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir={root!r})
module = TinySimCLR()
trainer.fit(module, loader)
if trainer.global_rank == 0:
    torch.save(module.state_dict(), {weights!r})
# Lightning leaves the gloo group up; torch asks for destroy_process_group before exit, and without it a rank
# can abort at interpreter shutdown ("terminate called without an active exception", seen once in CI under load).
torch.distributed.destroy_process_group()
"""


def test_ddp_ranks_share_the_probe_set_and_rank_0_writes(tmp_path):
    """Two CPU processes on gloo, launched as torchrun would (Lightning sees LOCAL_RANK and spawns nothing)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from browser import free_port

    repo = Path(__file__).resolve().parent.parent
    script = tmp_path / "worker.py"
    script.write_text(
        DDP_WORKER.format(
            repo=str(repo),
            tests=str(repo / "tests"),
            runs=str(tmp_path / "runs"),
            root=str(tmp_path),
            weights=str(tmp_path / "final.pt"),
        )
    )
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(
                os.environ,
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE="2",
                NODE_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
            ),
        )
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    run = open_run(str(tmp_path / "runs" / "ddp"))
    assert run.status == "finished" and run.info["world_size"] == 2
    assert run.metrics()["step"].tolist() == [1, 2, 3, 4]
    assert run.snapshot_steps() == [0, 3, 4]
    module = TinySimCLR()
    module.load_state_dict(torch.load(tmp_path / "final.pt", weights_only=True))
    module.eval()
    probe = probe_set()
    with torch.no_grad():
        z, h = embed_with_features(module, probe.inputs)
    snap = run.snapshot(4)  # both ranks' halves, back in the probe set's order
    np.testing.assert_allclose(snap.embeddings, z.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_allclose(snap.features, h.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_array_equal(snap.labels, probe.labels.numpy())
    np.testing.assert_array_equal(snap.images, probe.images)
    assert list(snap.metadata["parity"]) == list(probe.metadata["parity"])
