"""The caption-conditioned generator: captions, CLIP loss, the judge and its metrics, the curriculum schedules, and
short training runs that write both modalities, gen/* metrics and the sample grid."""

import math

import numpy as np
import pytest
import torch
from test_train import one_thread  # noqa: F401  (autouse: one CPU thread, as in test_train)

from diagnostics import open_run
from diagnostics.reference.reference_summary import snapshot_summary
from training.captions import VOCAB, caption_attributes, make_captions, slant, tokenize
from training.config import load_config
from training.curriculum import beta_at
from training.generation import class_variance, digit_judge, frechet_distance, train_judge
from training.objectives import Temperature, batch_stats, clip_loss
from training.train import train

SMALL = [
    'model.kind="cvae"',
    'contrastive.objective="clip"',
    "model.hidden=64",
    "model.latent_dim=8",
    "head.width=32",
    "head.out_dim=16",
    "batch_size=32",
    "data.probe_size=80",
    "snapshot_every=10",
    "contrastive.warmup_steps=5",
    "optim.warmup_steps=5",
    "optim.lr=3e-3",
    "data.augment_strength=0.3",
]


def test_slant_and_captions():
    bar = np.zeros((1, 8, 8))
    bar[0, :, 3] = 1.0  # vertical stroke: no slant
    diag = np.zeros((1, 8, 8))
    diag[0, np.arange(8), 7 - np.arange(8)] = 1.0  # "/": one column right per row up
    assert slant(bar)[0] == pytest.approx(0.0, abs=1e-12)
    assert slant(diag)[0] == pytest.approx(1.0, rel=1e-12)
    from sklearn.datasets import load_digits

    d = load_digits()
    captions = make_captions(d.images / 16.0, d.target)
    assert captions[0].endswith(" zero") and len(set(captions)) == 90  # 10 digits × 3 widths × 3 slants
    width, lean = caption_attributes(d.images / 16.0, d.target)
    for c in range(10):  # tertiles within each class
        counts = np.bincount(width[d.target == c], minlength=3)
        assert counts.min() >= 0.25 * counts.sum()  # ties in ink mass make them uneven
    assert tokenize(captions[:3]).shape == (3, 4) and tokenize(captions[:3]).max() < len(VOCAB)
    with pytest.raises(ValueError, match="purple"):
        tokenize(["a purple upright two"])


def test_clip_loss_closed_forms():
    torch.manual_seed(0)
    same = torch.ones(8, 4)  # every logit equal: log B
    loss = clip_loss(same, same, 0.1)
    assert loss.item() == pytest.approx(math.log(8), rel=1e-6)
    a, b = torch.randn(16, 5), torch.randn(16, 5)
    assert clip_loss(a, b, 0.2).item() == pytest.approx(clip_loss(b, a, 0.2).item(), rel=1e-6)  # symmetric
    loss, logits, targets = clip_loss(a, b, 0.2, return_logits=True)
    stats = batch_stats(logits, targets, 0.2, loss)
    assert stats["batch/infonce_bound"] == pytest.approx(math.log(16) - loss.item(), rel=1e-6)
    assert 0 < stats["batch/softmax_entropy"] <= math.log(16) + 1e-6


def test_judge_is_deterministic_and_accurate():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).reshape(-1, 64)
    y = torch.as_tensor(d.target)
    j1, j2 = train_judge(x[:1400], y[:1400]), train_judge(x[:1400], y[:1400])
    for p, q in zip(j1.parameters(), j2.parameters()):
        assert torch.equal(p, q)
    held_out = (j1(x[1400:]).argmax(1) == y[1400:]).float().mean().item()
    assert held_out > 0.88  # measured 0.922 on the last 397 digits
    assert digit_judge() is digit_judge()  # trained once per process


def test_frechet_and_diversity_closed_forms():
    f = np.random.default_rng(0).standard_normal((500, 6))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    assert frechet_distance(f, f + shift) == pytest.approx((shift**2).sum(), abs=1e-9)  # same covariance
    labels = np.repeat(np.arange(5), 100)
    # one image per class: 0 up to the rounding of a mean of 100 equal values (~1e-16 each, squared)
    assert class_variance(np.repeat(f[:5], 100, axis=0), labels) == pytest.approx(0.0, abs=1e-24)


def test_curriculum_beta_and_entropy_temperature():
    c = load_config(
        None,
        [
            'contrastive.objective="hard_negative"',
            "contrastive.beta=2.0",
            'contrastive.beta_schedule="linear"',
            "contrastive.beta_start=0.5",
            "contrastive.beta_anneal_steps=100",
        ],
    ).contrastive
    assert [beta_at(c, s) for s in (0, 50, 100, 400)] == [0.5, 1.25, 2.0, 2.0]
    t = Temperature(0.1, "entropy", minimum=0.05)
    t.steer(entropy=1.0, target=2.0, gain=0.1, maximum=0.5)  # too peaked: τ rises by e^{0.1}
    assert float(t(0)) == pytest.approx(0.1 * math.exp(0.1), rel=1e-6)
    for _ in range(100):
        t.steer(entropy=0.0, target=2.0, gain=0.1, maximum=0.5)
    assert float(t(0)) == pytest.approx(0.5, rel=1e-6)  # clamped at τ_max
    with pytest.raises(ValueError, match="clip"):
        load_config(None, ['contrastive.objective="clip"'])  # clip needs model.kind = cvae


def test_cross_modal_run_writes_both_modalities_and_generation_metrics(tmp_path):
    path = train(load_config(None, SMALL + ["steps=30"]), str(tmp_path), "cm", checkpoint_dir=str(tmp_path / "ck"))
    run = open_run(path)
    assert run.status == "finished" and run.snapshot_steps() == [10, 20, 30]
    m = run.metrics()
    evals = m.dropna(subset=["gen/conditional_accuracy"])
    assert list(evals["step"]) == [10, 20, 30]
    assert ((evals["gen/conditional_accuracy"] >= 0) & (evals["gen/conditional_accuracy"] <= 1)).all()
    assert (evals["gen/diversity"] >= 0).all() and (evals["gen/frechet_distance"] >= 0).all()
    assert "batch/softmax_entropy" in m.columns
    s = run.snapshot(30)
    assert s.modality_names == ("image", "caption") and s.paired_embeddings.shape == s.embeddings.shape == (80, 16)
    assert s.positives.shape == (80, 16) and s.features.shape == (80, 8)
    assert all(c.split()[-1] for c in s.metadata["caption"])
    grid = run.generated_samples()
    assert grid.shape == (10, 9, 8, 8) and grid.dtype == np.uint8
    summary = snapshot_summary(s, temperature=0.1)
    for key in (
        "modality_gap",
        "cross_modal_recall@1",
        "cross_modal_recall@5",
        "cross_modal_recall@10",
        "uniformity_a",
        "uniformity_b",
        "effective_rank_a",
        "effective_rank_b",
    ):
        assert summary[key] is not None, key
    # the ablation: λ = 0 still logs the (untrained-for) CLIP loss, with zero weight
    ablated = open_run(
        train(
            load_config(None, SMALL + ["steps=10", "contrastive.weight=0.0"]),
            str(tmp_path),
            "cm0",
            checkpoint_dir=str(tmp_path / "ck"),
        )
    )
    assert (ablated.metrics()["lambda"].dropna() == 0).all()


def test_entropy_temperature_run_steers_tau(tmp_path):
    cfg = load_config(
        None,
        [
            "model.hidden=64",
            "model.latent_dim=8",
            "head.width=32",
            "head.out_dim=16",
            "batch_size=32",
            "data.probe_size=60",
            "snapshot_every=20",
            "steps=40",
            'contrastive.temperature_mode="entropy"',
            "contrastive.target_entropy=1.0",
            "contrastive.temperature_gain=0.1",
            "contrastive.temperature_min=0.02",
        ],
    )
    m = open_run(train(cfg, str(tmp_path), "ent", checkpoint_dir=str(tmp_path / "ck"))).metrics()
    rows = m.dropna(subset=["loss/total"])
    # the softmax starts near uniform (entropy ≈ log 63 ≫ 1 nat), so the controller cools τ every early step
    assert rows["temperature"].iloc[0] == pytest.approx(0.1, rel=1e-7)  # τ is a float32 parameter
    assert rows["temperature"].iloc[5] < rows["temperature"].iloc[0]
    tau = rows["temperature"].to_numpy()
    ent = rows["batch/softmax_entropy"].to_numpy()
    np.testing.assert_allclose(
        np.log(tau[1:]), np.clip(np.log(tau[:-1]) + 0.1 * (1.0 - ent[:-1]), math.log(0.02), math.log(1.0)), rtol=1e-5
    )
