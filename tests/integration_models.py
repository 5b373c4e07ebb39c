"""Tiny real models and data for the trainer-integration tests: a SimCLR-style MLP on scikit-learn's bundled
digits (no download), two noisy views of each image as positives."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from integrations.probe import ProbeSet

TAU = 0.2
PROBE_ROWS = 48


def digits_views(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """(view a, view b, labels, 8×8 uint8 thumbnails) for the first n digits; views are image + N(0, 0.1²)."""
    digits = load_digits()
    x = torch.tensor(digits.data[:n] / 16.0, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    a, b = x + 0.1 * torch.randn(x.shape, generator=g), x + 0.1 * torch.randn(x.shape, generator=g)
    thumbs = (digits.images[:n] * (255 / 16)).round().astype(np.uint8)
    return a, b, torch.tensor(digits.target[:n]), thumbs


def probe_set() -> ProbeSet:
    a, b, y, thumbs = digits_views(PROBE_ROWS, seed=1)
    views_b = (b.clamp(0, 1) * 255).round().to(torch.uint8).reshape(-1, 8, 8).numpy()
    return ProbeSet(
        inputs=a,
        positives=b,
        labels=y,
        images=thumbs,
        positive_images=views_b,
        batch_size=20,  # 20: batches split rows
        metadata={"parity": np.where(y.numpy() % 2 == 0, "even", "odd"), "ink": a.sum(1).numpy()},
    )


class Encoder(torch.nn.Module):
    """backbone h = relu(W1 x), embedding z = normalise(W2 h)."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU())
        self.head = torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    logits = z_a @ z_b.T / tau  # logits: NxN, positives on the diagonal
    return F.cross_entropy(logits, torch.arange(len(z_a)))


def embed_with_features(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    encoder = getattr(model, "encoder", model)
    return encoder(x), encoder.backbone(x)


# float16 storage (values within its range are stored as float16): rounding error ≤ 2^-11 relative, 2^-25
# absolute in the subnormal range.
F16_RTOL, F16_ATOL = 2.0**-11, 2.0**-24
