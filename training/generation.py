"""Scoring what a conditional generator draws: a small digit classifier (the judge), trained deterministically
at first use, and three numbers in its feature space.

gen/conditional_accuracy  share of samples the judge reads as the digit their caption asked for
gen/diversity             per-class feature variance of the samples over that of real held-out digits
                          (mean over classes of the mean per-feature variance; 1 = as varied as real data,
                          0 = one image per class)
gen/frechet_distance      Fréchet distance between Gaussians fitted to sample and real features (FID's formula,
                          Heusel et al. 2017, in the judge's 64-d hidden layer instead of Inception's)
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn

from .data import PIXELS, SIDE, augment

JUDGE_HIDDEN = 64
JUDGE_STEPS = 150


class DigitJudge(nn.Module):
    """64 pixels -> 64 GELU features -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(PIXELS, JUDGE_HIDDEN), nn.GELU())
        self.classify = nn.Linear(JUDGE_HIDDEN, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def train_judge(images: torch.Tensor, labels: torch.Tensor, seed: int = 0, steps: int = JUDGE_STEPS) -> DigitJudge:
    """Full-batch AdamW on the images plus one mildly augmented copy (so blurry or shifted samples are still
    read), from a seeded initialisation: the same inputs give the same weights bit for bit on one machine."""
    g = torch.Generator().manual_seed(seed)
    x = images.reshape(-1, SIDE, SIDE)
    x = torch.cat([x, augment(x, 0.5, g)]).reshape(-1, PIXELS)
    y = torch.cat([labels, labels])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = DigitJudge()
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-2, weight_decay=1e-3)
    with torch.enable_grad():  # first use may come from inside an evaluation's no_grad
        for _ in range(steps):
            loss = nn.functional.cross_entropy(judge(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return judge.eval().requires_grad_(False)


@functools.lru_cache(maxsize=1)
def digit_judge() -> DigitJudge:
    """The judge every run is scored by: trained once per process on all 1797 sklearn digits (it is an
    instrument, not a model under test), well under a second on one CPU thread."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.tensor(d.images / 16.0, dtype=torch.float32).reshape(-1, PIXELS)
    return train_judge(images, torch.as_tensor(d.target, dtype=torch.long))


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^½ Σ₂ Σ₁^½)^½), in float64; the trace of the cross term is the sum of the
    square roots of the eigenvalues of the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½ (no non-symmetric sqrtm)."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


def class_variance(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with ≥ 2 rows) of the mean per-feature variance within the class."""
    per_class = [features[labels == c].var(axis=0).mean() for c in np.unique(labels) if (labels == c).sum() >= 2]
    return float(np.mean(per_class)) if per_class else float("nan")


@torch.no_grad()
def generation_metrics(
    samples: torch.Tensor, asked: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor
) -> dict[str, float]:
    """samples: M×64 in [0, 1] drawn for captions of digits `asked` (M); real: held-out images with labels."""
    judge = digit_judge()
    samples, real = samples.float().cpu(), real.float().cpu()
    f_gen, f_real = judge.features(samples), judge.features(real)
    predicted = judge.classify(f_gen).argmax(dim=1)
    f_gen, f_real = f_gen.double().numpy(), f_real.double().numpy()
    asked_np, real_np = asked.cpu().numpy(), real_labels.cpu().numpy()
    return {
        "gen/conditional_accuracy": float((predicted == asked.cpu()).float().mean()),
        "gen/diversity": class_variance(f_gen, asked_np) / class_variance(f_real, real_np),
        "gen/frechet_distance": frechet_distance(f_gen, f_real),
    }
