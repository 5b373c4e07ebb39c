"""Small synthetic runs written through the real RunWriter, for tests that need a run on disk quickly.

The geometry is constructed, not trained: `healthy` keeps K well-separated clusters on the sphere,
`complete_collapse` shrinks every point onto one direction after the midpoint, `dimensional_collapse`
squeezes the embeddings into 2 directions after the midpoint.
"""

from __future__ import annotations

import numpy as np

from runformat.writer import RunWriter

KINDS = ("healthy", "complete_collapse", "dimensional_collapse")


def _embeddings(rng, centers, labels, progress: float, kind: str, d: int) -> np.ndarray:
    z = centers[labels] + 0.35 * rng.standard_normal((len(labels), d))
    if kind == "complete_collapse" and progress > 0.5:
        shrink = min(1.0, (progress - 0.5) * 2.5)
        z = (1 - shrink) * z + shrink * (np.ones(d) + 1e-3 * rng.standard_normal((len(labels), d)))
    if kind == "dimensional_collapse" and progress > 0.5:
        keep = max(2, int(d * (1 - (progress - 0.5) * 2)))
        z[:, keep:] *= 1e-3
    return z.astype(np.float32)


def write_synthetic_run(
    root,
    name: str,
    kind: str = "healthy",
    steps: int = 100,
    snapshot_every: int = 20,
    n: int = 300,
    d: int = 32,
    classes: int = 5,
    seed: int = 0,
    images: bool = True,
    temperature: float = 0.1,
    weight: float = 1.0,
    close: bool = True,
    positive_images: bool = False,
):
    if kind not in KINDS:
        raise ValueError(f"kind: one of {KINDS}")
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)) * 2.0
    labels = np.arange(n) % classes
    config = {
        "description": f"Synthetic {kind.replace('_', ' ')} run for tests.",
        "contrastive": {"weight": weight, "temperature": temperature, "objective": "nt_xent"},
        "seed": seed,
    }
    thumbs = (rng.random((n, 8, 8)) * 255).astype(np.uint8) if images else None
    # the positives' pictures: the anchors' shifted one pixel right (a second "view")
    thumbs_b = np.roll(thumbs, 1, axis=2) if images and positive_images else None
    writer = RunWriter(root, name, config=config)
    for step in range(steps + 1):
        progress = step / max(steps, 1)
        loss = 2.0 * np.exp(-3 * progress) + 0.1
        writer.log_metrics(
            step,
            {
                "loss/total": loss + 0.05,
                "loss/contrastive": loss,
                "loss/reconstruction": 0.05,
                "lambda": weight * min(1.0, 2 * progress),
                "temperature": temperature,
                "lr": 1e-3,
                "grad_norm": 1.0 + progress,
                "batch/pos_cos": 0.5 + 0.4 * progress,
                "batch/neg_cos": 0.1,
                "batch/top1": 0.2 + 0.7 * progress,
            },
        )
        if step % snapshot_every == 0:
            z_a = _embeddings(rng, centers, labels, progress, kind, d)
            z_b = z_a + 0.05 * rng.standard_normal(z_a.shape).astype(np.float32)
            feats = np.concatenate([z_a, rng.standard_normal((n, 8)).astype(np.float32)], axis=1)
            writer.log_snapshot(
                step,
                embeddings=z_a,
                positives=z_b,
                features=feats,
                labels=labels,
                metadata={"class": np.array([f"c{c}" for c in labels]), "strength": rng.random(n)},
                images=thumbs,
                positive_images=thumbs_b,
            )
            # the contrastive term costs a little reconstruction quality here, so ablations have something to show
            recon_mse = (0.02 + 0.01 * weight) * (1 + 4 * np.exp(-step / 20))
            writer.log_metrics(step, {"eval/recon_mse": recon_mse, "eval/psnr": -10 * np.log10(recon_mse)})
    if close:
        writer.close()
    return writer


def write_synthetic_root(root, n: int = 300) -> list[str]:
    names = ["healthy-synthetic", "complete-collapse-synthetic", "dimensional-collapse-synthetic"]
    for name, kind in zip(names, KINDS):
        write_synthetic_run(root, name, kind=kind, n=n)
    return names


def write_user_run(
    root,
    name: str,
    steps: int = 120,
    snapshot_every: int = 40,
    n: int = 150,
    d: int = 16,
    classes: int = 5,
    seed: int = 0,
):
    """A run shaped like a user's own small training loop (issue 23: an MLP on digits, NT-Xent at τ 0.1): the
    losses fall from 6.1 to 2.2 (inside one decade), the learning rate is a constant 1e-3, τ a constant 0.1,
    nothing switches on or off (no config events) and the geometry stays healthy (no alarms)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)) * 2.0
    labels = np.arange(n) % classes
    config = {
        "description": "An outside training loop: MLP on digits.",
        "seed": seed,
        "contrastive": {"objective": "nt_xent", "temperature": 0.1},
        "optim": {"lr": 1e-3},
    }
    with RunWriter(root, name, config=config) as writer:
        for step in range(steps + 1):
            progress = step / max(steps, 1)
            loss = 2.2 + 3.9 * np.exp(-4 * progress) + 0.01 * rng.standard_normal()
            writer.log_metrics(
                step,
                {
                    "loss/total": loss,
                    "loss/contrastive": loss,
                    "lr": 1e-3,
                    "temperature": 0.1,
                    "grad_norm": 2.0 - progress,
                    "batch/pos_cos": 0.6 + 0.2 * progress,
                    "batch/neg_cos": 0.05,
                    "batch/top1": 0.3 + 0.5 * progress,
                },
            )
            if step % snapshot_every == 0:
                z = _embeddings(rng, centers, labels, progress, "healthy", d)
                writer.log_snapshot(
                    step,
                    embeddings=z,
                    positives=z + 0.05 * rng.standard_normal(z.shape).astype(np.float32),
                    labels=labels,
                )
