"""Does the contrastive term fight the reconstruction loss? Read from the run's metrics, per snapshot interval:

    r_i = median reconstruction loss over the metric lines in (s_{i−1}, s_i]   (at least MIN_LINES lines)
    c_i = median contrastive loss over the same lines
    fight at snapshot i:  r_i ≥ RISE · min_{j<i} r_j  while  c_i < RISE · c_{j*}   (j* = where that minimum was)

The reconstruction climbs back above its best while the contrastive term does not: the contrastive
weight λ is winning the shared encoder at the decoder's expense ("reconstruction_rising", a warning; info once
the reconstruction is back below its earlier best at the last two snapshots). The representation itself may
look healthy meanwhile, so this is read from the losses, not the geometry. Metric names: the first of
RECONSTRUCTION / CONTRASTIVE a run logs (the trainer's, Lightning's and common spellings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import advice
from .advice import RunContext
from .alarms import Alarm

RECONSTRUCTION = ("loss/reconstruction", "loss/recon", "reconstruction_loss", "recon_loss", "train/recon_loss")
CONTRASTIVE = ("loss/contrastive", "contrastive_loss", "loss/infonce", "loss/nt_xent", "train/contrastive_loss")
# Evidence (per snapshot interval, median over its lines, against the best earlier interval): every shipped
# sample run with both losses and every VAE scenario stays ≤ 1.016× (vae-negatives-off, whose contrastive term
# went to 0.008; vae-lambda-warmup's λ ramp 1.007×; sequence-temporal-vae 1.006×; ae-healthy 0.96×); an
# autoencoder whose λ steps 1 → 300 once its reconstruction has settled (bench/scenarios.py ae-lambda-too-high,
# at 250, snapshots every 25) rises to 1.21× in its first interval after the switch and 1.25× in the next (a
# try with 1 → 30 at 200, snapshots every 50: 1.17×). 1.10 sits six healthy excursions up. The contrastive loss
# must not have risen by as much (a learning-rate blow-up raises both): right after λ × 300 it bumps 2.82 →
# 3.02 (1.07×) before falling below its level at the switch.
RISE = 1.10
MIN_LINES = 10  # an interval with fewer lines is widened back to the last MIN_LINES (snapshots every 2 steps)


def _column(metrics: pd.DataFrame, names: tuple) -> str | None:
    return next((n for n in names if n in metrics.columns), None)


def interval_medians(metrics: pd.DataFrame, steps: list[int], name: str) -> np.ndarray:
    """Per snapshot step: the median of `name` over the lines since the previous snapshot (NaN where none)."""
    m = metrics[["step", name]].copy()
    m[name] = pd.to_numeric(m[name], errors="coerce")
    m = m[np.isfinite(m[name].to_numpy(np.float64))].sort_values("step")
    at, values = m["step"].to_numpy(np.int64), m[name].to_numpy(np.float64)
    out, prev = np.full(len(steps), np.nan), -np.inf
    for i, s in enumerate(steps):
        lo, hi = np.searchsorted(at, prev, side="right"), np.searchsorted(at, s, side="right")
        lo = min(lo, max(0, hi - MIN_LINES))
        if hi > lo:
            out[i] = np.median(values[lo:hi])
        prev = s
    return out


def loss_balance_alarms(table: pd.DataFrame, context: RunContext | None = None) -> list[Alarm]:
    """At most one "reconstruction_rising" finding over the run's snapshot steps (table["step"])."""
    ctx = context or RunContext()
    metrics = ctx.metrics
    if not isinstance(metrics, pd.DataFrame) or "step" not in metrics or "step" not in table:
        return []
    rec, con = _column(metrics, RECONSTRUCTION), _column(metrics, CONTRASTIVE)
    if rec is None or con is None:
        return []
    steps = sorted(int(s) for s in table["step"])
    r, c = interval_medians(metrics, steps, rec), interval_medians(metrics, steps, con)
    for i in range(1, len(steps)):
        earlier = np.flatnonzero(np.isfinite(r[:i]))
        if not len(earlier) or not np.isfinite(r[i]):
            continue
        best = earlier[np.argmin(r[earlier])]
        if r[i] >= RISE * r[best] and c[i] < RISE * c[best]:
            before = steps[i - 1]
            message = (
                f"The reconstruction loss ({rec}) rose to {r[i]:.4g} at step {steps[i]}, {r[i] / r[best]:.2f}× its "
                f"best ({r[best]:.4g} at step {steps[best]}), while the contrastive loss ({con}) moved "
                f"{c[i] / c[best]:.2f}× ({c[best]:.4g} → {c[i]:.4g}): the contrastive term is winning the shared "
                "encoder at the decoder's expense."
            )
            back = len(steps) - i > 2 and all(np.isfinite(r[j]) and r[j] < r[best] for j in (-1, -2))
            if back:
                message += f" It recovered by step {steps[-1]}."
            event = advice.explaining_event(ctx, before, steps[i])
            tip = (
                f"{event.text} falls between the last snapshot before the rise and the first after it: that switch "
                "is the likely cause; undo it or move it later."
                if event is not None
                else "Lower the contrastive weight λ (contrastive.weight) or lengthen its warm-up, or normalise the "
                "two losses to the same scale (a per-pixel mean against a sum over the batch)."
            )
            return [
                Alarm(
                    "reconstruction_rising",
                    "info" if back else "warning",
                    steps[i],
                    steps[i],
                    message,
                    tip,
                    ["reconstruction"],
                    before,
                )
            ]
    return []
