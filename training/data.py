"""Offline data with two kinds of positive pair, all on an 8×8 grid so one autoencoder serves both.

digits:    scikit-learn's bundled handwritten digits (1797 images); positives = two augmented views
           (shift, rotation, intensity, noise; `augment_strength` scales all four).
sequences: generated clips of a pattern moving across a torus grid; the class fixes the shape and the
           velocity; positives = temporally adjacent frames of one clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig

SIDE = 8
PIXELS = SIDE * SIDE

SHAPES = {
    "blob": [(0, 0), (0, 1), (1, 0), (1, 1)],
    "hbar": [(0, 0), (0, 1), (0, 2), (0, 3)],
    "vbar": [(0, 0), (1, 0), (2, 0), (3, 0)],
    "plus": [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)],
    "diag": [(0, 0), (1, 1), (2, 2)],
}
VELOCITIES = {"right": (0, 1), "down-right": (1, 1)}


@dataclass
class Probe:
    """The fixed rows logged at every snapshot (view A -> embeddings, view B -> positives)."""

    view_a: torch.Tensor  # Nx64
    view_b: torch.Tensor  # Nx64
    labels: torch.Tensor  # N
    metadata: dict  # column -> length-N numpy array
    images: np.ndarray  # NxHxW uint8, view A
    positive_images: np.ndarray  # NxHxW uint8, view B (the positives' pictures)

    def shard(self, rank: int, world: int) -> "Probe":
        """Contiguous rows for one rank; gathering the shards in rank order restores the original order."""
        idx = np.array_split(np.arange(len(self.labels)), world)[rank]
        return Probe(
            self.view_a[idx],
            self.view_b[idx],
            self.labels[idx],
            {k: v[idx] for k, v in self.metadata.items()},
            self.images[idx],
            self.positive_images[idx],
        )


def augment(x: torch.Tensor, strength, generator: torch.Generator) -> torch.Tensor:
    """Random affine (rotation ±20°·s, shift ±1 px·s), intensity ×[1 ± 0.3·s], noise σ = 0.05·s, per image.
    x: Nx8x8 in [0, 1]; strength: a float or a length-N tensor."""
    n = x.shape[0]
    s = torch.as_tensor(strength, dtype=torch.float32).expand(n)
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731  U(−1, 1) per image
    angle = u() * math.radians(20) * s
    shift = torch.stack([u(), u()], dim=1) * (2.0 / SIDE) * s[:, None]  # 1 px = 2/8 in grid units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, (n, 1, SIDE, SIDE), align_corners=False)
    out = F.grid_sample(x[:, None], grid, align_corners=False, padding_mode="zeros")[:, 0]
    out = out * (1 + 0.3 * s * u())[:, None, None]
    out = out + 0.05 * s[:, None, None] * torch.randn(out.shape, generator=generator)
    return out.clamp(0, 1)


def _subsample_imbalanced(labels: np.ndarray, imbalance: float, rng: np.random.Generator) -> np.ndarray:
    """Keep class c's share imbalance^(−c/(C−1)) of its rows: class 0 whole, the last class 1/imbalance."""
    classes = np.unique(labels)
    keep = []
    for i, c in enumerate(classes):
        rows = np.flatnonzero(labels == c)
        share = imbalance ** (-i / max(len(classes) - 1, 1))
        keep.append(rng.permutation(rows)[: max(2, int(round(len(rows) * share)))])
    return np.sort(np.concatenate(keep))


class PairData:
    """Training/eval split, a batch sampler (optionally oversampling rare classes) and positive pairs."""

    def __init__(self, cfg: DataConfig, seed: int):
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        if cfg.kind == "digits":
            from sklearn.datasets import load_digits

            d = load_digits()
            items = torch.tensor(d.images / 16.0, dtype=torch.float32)  # Nx8x8
            labels = d.target.astype(np.int64)
            self.class_names = [str(c) for c in range(10)]
        else:
            items, labels, self.class_names = make_sequences(cfg.n_sequences, cfg.frames, cfg.frame_noise, rng)
        keep = _subsample_imbalanced(labels, cfg.imbalance, rng) if cfg.imbalance > 1 else np.arange(len(labels))
        self.items, self.labels = items[keep], labels[keep]
        order = rng.permutation(len(self.labels))
        n_eval = max(1, int(round(len(order) * cfg.eval_fraction)))
        self.eval_rows, self.train_rows = np.sort(order[:n_eval]), np.sort(order[n_eval:])
        counts = np.bincount(self.labels[self.train_rows], minlength=len(self.class_names)).astype(np.float64)
        self.class_counts = counts
        w = 1.0 / counts[self.labels[self.train_rows]] if cfg.oversample else np.ones(len(self.train_rows))
        self.sample_weights = torch.tensor(w / w.sum(), dtype=torch.float64)
        self.probe_rows = np.sort(rng.permutation(len(self.labels))[: min(cfg.probe_size, len(self.labels))])

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views of `batch_size` training rows: (view_a, view_b), each Bx64."""
        if self.cfg.oversample:
            pick = torch.multinomial(self.sample_weights, batch_size, replacement=True, generator=generator)
        else:
            pick = torch.randperm(self.n_train, generator=generator)[:batch_size]
        rows = torch.as_tensor(self.train_rows)[pick]
        return self.views(rows, generator)

    def views(self, rows: torch.Tensor, generator: torch.Generator, strength=None):
        s = self.cfg.augment_strength if strength is None else strength
        x = self.items[rows]
        if self.cfg.kind == "digits":
            a, b = augment(x, s, generator), augment(x, s, generator)
        else:  # x: BxTx8x8; frames t and t+1 of each clip, fresh pixel noise
            t = torch.randint(0, x.shape[1] - 1, (len(rows),), generator=generator)
            i = torch.arange(len(rows))
            sigma = self.cfg.frame_noise * s
            a = (x[i, t] + sigma * torch.randn(x[i, t].shape, generator=generator)).clamp(0, 1)
            b = (x[i, t + 1] + sigma * torch.randn(x[i, t].shape, generator=generator)).clamp(0, 1)
        return a.reshape(len(rows), PIXELS), b.reshape(len(rows), PIXELS)

    def eval_images(self, limit: int = 2000) -> torch.Tensor:
        """Clean held-out images (every frame of held-out clips), Mx64."""
        x = self.items[self.eval_rows]
        x = x.reshape(-1, SIDE, SIDE) if self.cfg.kind == "sequences" else x
        return x[:limit].reshape(-1, PIXELS)

    def probe(self, seed: int) -> Probe:
        """Fixed probe rows with fixed views, the same at every snapshot."""
        g = torch.Generator().manual_seed(seed + 7919)
        rows = torch.as_tensor(self.probe_rows)
        n = len(rows)
        split = np.where(np.isin(self.probe_rows, self.eval_rows), "eval", "train")
        labels = torch.as_tensor(self.labels[self.probe_rows])
        names = np.array(self.class_names)[labels.numpy()]
        if self.cfg.kind == "digits":
            # view A clean, view B at a per-row strength in [0, 2s]: how alignment decays with augmentation
            strength = torch.rand(n, generator=g) * 2 * self.cfg.augment_strength
            x = self.items[rows]
            a, b = x.reshape(n, PIXELS), augment(x, strength, g).reshape(n, PIXELS)
            meta = {
                "class_name": names,
                "split": split,
                "augment_strength": strength.numpy().round(3),
                "sample_id": self.probe_rows.astype(np.int64),
            }
        else:
            t = torch.randint(0, self.items.shape[1] - 1, (n,), generator=g)
            clips = self.items[rows]
            a, b = clips[torch.arange(n), t], clips[torch.arange(n), t + 1]
            a, b = a.reshape(n, PIXELS), b.reshape(n, PIXELS)
            meta = {
                "class_name": names,
                "split": split,
                "sequence_id": self.probe_rows.astype(np.int64),
                "frame": t.numpy().astype(np.int64),
            }

        def picture(x: torch.Tensor) -> np.ndarray:
            return (x.reshape(n, SIDE, SIDE).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

        return Probe(a, b, labels, meta, picture(a), picture(b))


def make_sequences(n: int, frames: int, noise: float, rng: np.random.Generator):
    """n clips (n x frames x 8 x 8) of one shape moving with a class-specific velocity, wrapping around."""
    classes = [(s, v) for v in VELOCITIES for s in SHAPES]
    labels = rng.integers(0, len(classes), size=n).astype(np.int64)
    clips = np.zeros((n, frames, SIDE, SIDE), dtype=np.float32)
    for i, c in enumerate(labels):
        shape, direction = classes[c]
        velocity = VELOCITIES[direction]
        r0, c0 = rng.integers(0, SIDE, size=2)
        brightness = rng.uniform(0.6, 1.0)
        for t in range(frames):
            for dr, dc in SHAPES[shape]:
                clips[i, t, (r0 + dr + velocity[0] * t) % SIDE, (c0 + dc + velocity[1] * t) % SIDE] = brightness
    clips += noise * rng.standard_normal(clips.shape).astype(np.float32)
    names = [f"{s}/{v}" for s, v in classes]
    return torch.from_numpy(clips.clip(0, 1)), labels, names
