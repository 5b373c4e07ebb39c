"""Short CPU training runs: the loss falls, the run reads back, resume continues, seeds reproduce."""

import os

import numpy as np
import pytest
import torch

from diagnostics import open_run
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import load_config
from training.data import PairData
from training.train import train

METRICS = [
    "loss/total",
    "loss/contrastive",
    "loss/reconstruction",
    "lambda",
    "temperature",
    "lr",
    "grad_norm",
    "batch/pos_cos",
    "batch/neg_cos",
    "batch/hardest_neg_cos",
    "batch/top1",
    "batch/infonce_bound",
]
SMALL = [
    "model.hidden=64",
    "model.latent_dim=8",
    "head.width=32",
    "head.out_dim=16",
    "batch_size=32",
    "data.probe_size=120",
    "snapshot_every=20",
    "contrastive.warmup_steps=10",
    "optim.warmup_steps=5",
    "optim.lr=3e-3",
]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small(*extra, steps=60):
    return load_config(None, SMALL + [f"steps={steps}", *extra])


def test_short_run_lowers_loss_and_reads_back(tmp_path):
    path = train(small(steps=120), str(tmp_path), "digits", checkpoint_dir=str(tmp_path / "ck"))
    run = open_run(path)
    assert run.status == "finished" and run.description
    m = run.metrics()
    for name in METRICS + ["eval/recon_mse", "eval/psnr"]:
        assert name in m.columns, name
    train_rows = m.dropna(subset=["loss/total"])
    assert list(train_rows["step"]) == list(range(120))
    assert (
        train_rows["loss/reconstruction"].iloc[-10:].mean() < 0.6 * train_rows["loss/reconstruction"].iloc[:10].mean()
    )
    assert train_rows["loss/contrastive"].iloc[-10:].mean() < train_rows["loss/contrastive"].iloc[10:20].mean()
    assert train_rows["lambda"].iloc[0] == 0.0 and train_rows["lambda"].iloc[-1] == 1.0
    evals = m.dropna(subset=["eval/recon_mse"])
    assert evals["eval/recon_mse"].iloc[-1] < evals["eval/recon_mse"].iloc[0]
    assert run.snapshot_steps() == [20, 40, 60, 80, 100, 120]
    s = run.snapshot(120)
    assert s.n == 120 and s.embeddings.shape == (120, 16) and s.positives.shape == (120, 16)
    assert s.features.shape == (120, 8) and s.images.shape == (120, 8, 8) and s.images.dtype == np.uint8
    cfg = small(steps=120)
    views_b = PairData(cfg.data, cfg.seed).probe(cfg.seed).view_b.reshape(-1, 8, 8)  # what the positives saw
    np.testing.assert_array_equal(s.positive_images, (views_b.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    assert (s.positive_images != s.images).any()  # view B is augmented, view A is clean
    assert set(s.labels) <= set(range(10)) and {"class_name", "augment_strength", "split"} <= set(s.metadata)
    assert (s.metadata["class_name"].astype(int) == s.labels).all()
    assert run.config["contrastive"]["weight"] == 1.0 and run.config["contrastive"]["temperature"] == 0.1


def test_seed_reproduces_on_cpu(tmp_path):
    a = open_run(train(small(steps=15), str(tmp_path), "a", checkpoint_dir=str(tmp_path / "ck"))).metrics()
    b = open_run(train(small(steps=15), str(tmp_path), "b", checkpoint_dir=str(tmp_path / "ck"))).metrics()
    cols = ["loss/total", "batch/top1", "grad_norm"]
    np.testing.assert_array_equal(a[cols].to_numpy(), b[cols].to_numpy())


def test_resume_continues_the_same_run(tmp_path):
    ck = str(tmp_path / "ck")
    cfg = small("checkpoint_every=20", "optim.schedule=constant", steps=40)
    path = train(cfg, str(tmp_path), "r", checkpoint_dir=ck)
    assert load_checkpoint(os.path.join(ck, "r.pt"))["step"] == 40
    cfg.steps = 70
    train(cfg, str(tmp_path), "r", resume=True, checkpoint_dir=ck)
    run = open_run(path)
    assert run.status == "finished" and run.info["resumed"] == 1
    steps = run.metrics().dropna(subset=["loss/total"])["step"].tolist()
    assert steps == list(range(70))  # no gap, no step twice
    assert run.snapshot_steps() == [20, 40, 60, 70]
    # the uninterrupted run draws the same batches: same loss at the resumed steps
    whole = open_run(
        train(small("optim.schedule=constant", steps=70), str(tmp_path), "whole", checkpoint_dir=ck)
    ).metrics()
    got = run.metrics().dropna(subset=["loss/total"]).set_index("step")["loss/total"]
    ref = whole.dropna(subset=["loss/total"]).set_index("step")["loss/total"]
    np.testing.assert_allclose(got.loc[40:69].to_numpy(), ref.loc[40:69].to_numpy(), rtol=1e-4)


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match="resume"):
        train(small(steps=5), str(tmp_path), "nothing", resume=True, checkpoint_dir=str(tmp_path / "ck"))


@pytest.mark.parametrize(
    "extra",
    [
        ["contrastive.objective=moco", "contrastive.queue_size=64"],
        ["contrastive.objective=hard_negative", "contrastive.hard_fraction=0.5"],
        ["model.kind=vae", "head.sharing=per_view", "head.norm=layernorm", "head.dropout=0.1"],
        [
            "data.kind=sequences",
            "data.n_sequences=200",
            "data.imbalance=5",
            "data.oversample=true",
            "contrastive.temperature_mode=learnable",
        ],
        [
            "contrastive.negatives_off_step=10",
            "head.output_batchnorm=true",
            "contrastive.temperature_mode=step",
            "contrastive.temperature_step=10",
            "contrastive.temperature_after=0.5",
        ],
    ],
)
def test_variants_run(tmp_path, extra):
    run = open_run(train(small(*extra, steps=21), str(tmp_path), "v", checkpoint_dir=str(tmp_path / "ck")))
    m = run.metrics().dropna(subset=["loss/total"])
    assert run.status == "finished" and len(m) == 21 and np.isfinite(m[METRICS].to_numpy()).all()
    if "model.kind=vae" in extra:
        assert (m["loss/kl"] > 0).all()
    if "contrastive.temperature_mode=learnable" in extra:
        assert m["temperature"].iloc[-1] != m["temperature"].iloc[0]
        assert "sequence_id" in run.snapshot(20).metadata
    if "contrastive.temperature_step=10" in extra:
        assert m["temperature"].iloc[9] == pytest.approx(0.1) and m["temperature"].iloc[10] == pytest.approx(0.5)


def test_imbalance_and_oversampling():
    cfg = load_config(None, ["data.imbalance=10", "data.oversample=true"]).data
    data = PairData(cfg, 0)
    counts = data.class_counts
    assert counts[0] / counts[-1] > 6  # about 10 after the random split
    g = torch.Generator().manual_seed(0)
    rows = torch.multinomial(data.sample_weights, 20000, replacement=True, generator=g)
    drawn = np.bincount(data.labels[data.train_rows][rows.numpy()], minlength=10)
    assert drawn.max() / drawn.min() < 1.2  # oversampling evens the classes out


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    p = str(tmp_path / "c.pt")
    save_checkpoint(p, {"step": 3, "w": torch.ones(2)})
    assert load_checkpoint(p)["step"] == 3 and os.listdir(tmp_path) == ["c.pt"]
    with pytest.raises(ValueError, match="path"):
        load_checkpoint(str(tmp_path / "none.pt"))
