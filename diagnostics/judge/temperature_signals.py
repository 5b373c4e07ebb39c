"""Is the temperature τ mis-set? Read per snapshot from what the engine measured over ẑŷᵀ/τ (the InfoNCE logits):

    margin   = (mean cos(z_i, y_i) − mean cos(z_i, y_j)) / τ     # nats the positive stands above a negative
    entropy  = softmax entropy / log N                              # 1: the softmax is uniform over N candidates
    hard     = share of each anchor's negative softmax weight on its k = 10 hardest negatives (its gradient
               weight, since ∂L/∂ẑ_i = (Σ_j p_ij ŷ_j − ŷ_i)/τ); k/(N − 1) when τ → ∞, → 1 when τ → 0

τ too high: the cosines do separate the positive (gap ≥ SEPARATED_GAP) but 1/τ shrinks it below MARGIN_NATS,
so the softmax is near uniform and the loss barely pulls positives in or pushes negatives apart.
τ too low: a slide (an alarm of diagnostics.judge.alarms) while the hardest negatives carry ≥ HARD_WEIGHT of the
gradient weight: the loss chases a handful of neighbours per anchor (often same-class false negatives).
A low τ alone is no fault (sample_runs/adaptive-temperature-entropy steers τ to 0.02–0.07 on purpose, hard
0.88–0.95, and stays healthy), so it is named only as the cause of a slide.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import advice
from .advice import RunContext
from .alarms import Alarm

# τ too high. Evidence (engine records): high-temperature-tau1 (τ = 1) keeps a margin of 0.47–0.88 nats at a
# cosine gap of 0.47–0.88 (entropy 0.98–0.99 of log N); nt-xent-tau-too-high after its switch to τ = 5: 0.2
# nats at gap 1.0 (entropy 1.00). Healthy runs: ≥ 1.4 nats past their first snapshot (nt-xent-tau-schedule at
# τ = 0.5: 1.5–1.7; every τ = 0.1 run ≥ 2.0). A collapsing run's margin falls too, but with its cosine gap
# (negatives removed: gap ≤ 0.1 by the time the margin is < 1), and an untrained first snapshot has gap ≤ 0.05:
# SEPARATED_GAP keeps both out.
MARGIN_NATS = 1.0
SEPARATED_GAP = 0.3
# τ too low. Evidence: nt-xent-tau-too-low (τ 0.1 → 0.01 at 150) puts 0.95 of the weight on the 10 hardest
# at its first affected snapshot (0.91–0.93 later) while its spread slides; τ = 0.1 runs hold 0.13–0.65
# (sample runs and scenarios), MoCo at τ = 0.2 0.17–0.28, hard-negative β = 1 0.09–0.27.
HARD_WEIGHT = 0.85
# Persistence, as alarms.STRONG: τ too high at PERSIST snapshots running, or at one with a margin below half
# of MARGIN_NATS (nt-xent-tau-too-high: 0.2 nats at its first affected snapshot; high-temperature-tau1: 0.47
# at its first); no healthy run goes below 1.4 nats after its first snapshot.
PERSIST = 2


def _col(table: pd.DataFrame, name: str) -> np.ndarray:
    if name not in table:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)


def logit_margin(table: pd.DataFrame) -> np.ndarray:
    """(mean positive cosine − mean negative cosine) / τ per snapshot, in nats; NaN without τ."""
    tau = _col(table, "temperature")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tau > 0, _col(table, "pos_neg_gap") / tau, np.nan)


def entropy_ratio(table: pd.DataFrame) -> np.ndarray:
    """Softmax entropy / log of the candidate count (the measured rows: each anchor against every row)."""
    n = _col(table, "finite_rows")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, _col(table, "softmax_entropy") / np.log(np.maximum(n, 2)), np.nan)


def too_high(table: pd.DataFrame) -> np.ndarray:
    """Per snapshot: the geometry separates the positive, the scaled logits do not."""
    return (logit_margin(table) < MARGIN_NATS) & (_col(table, "pos_neg_gap") >= SEPARATED_GAP)


def temperature_alarms(table: pd.DataFrame, alarms: list[Alarm], context: RunContext | None = None) -> list[Alarm]:
    """At most one "temperature_too_high" and one "temperature_too_low" finding (warnings) over the run table
    (sorted by step), given the run's trend alarms (for the slide a too-low τ would explain)."""
    ctx = context or RunContext()
    t = table.sort_values("step").reset_index(drop=True)
    steps = [int(s) for s in t["step"]]
    out = []
    high, margin, ent = too_high(t), logit_margin(t), entropy_ratio(t)
    for i in range(len(t)):
        if high[i] and (margin[i] < MARGIN_NATS / 2 or i + 1 >= PERSIST and high[i + 1 - PERSIST : i + 1].all()):
            first = i
            while first > 0 and high[first - 1]:
                first -= 1
            before = steps[first - 1] if first > 0 else None
            tau = float(_col(t, "temperature")[i])
            msg = (
                f"τ = {tau:.3g} is too high: the positive stands only {margin[i]:.2f} nats above a negative "
                f"(cosine gap {float(_col(t, 'pos_neg_gap')[i]):.2f} ÷ τ; below {MARGIN_NATS:g} since step "
                f"{steps[first]}), so the softmax is near uniform (entropy {ent[i]:.0%} of log N) and the loss "
                "barely tells the positive from the negatives."
            )
            tip = (
                f"Lower τ (contrastive.temperature = {tau:.3g} now; 0.1–0.2 is the usual range for NT-Xent) or "
                "make it learnable; the cosines already separate positives, the scale 1/τ hides it."
            )
            out.append(
                Alarm(
                    "temperature_too_high",
                    "warning",
                    steps[first],
                    steps[i],
                    msg,
                    _with_event(tip, ctx, before, steps[first]),
                    ["temperature"],
                    before,
                )
            )
            break
    if out and not (high[-1] or (len(high) > 1 and high[-2])):  # not too high at the last two: history
        out[0].severity, out[0].message = "info", out[0].message + f" It recovered by step {steps[-1]}."
    hard = _col(t, "hard_negative_weight")
    index = {s: i for i, s in enumerate(steps)}
    slides = sorted(
        (a for a in alarms if a.severity != "info" and a.step_started in index and a.step_detected in index),
        key=lambda a: (a.step_detected, a.step_started),
    )
    for a in slides:
        window = hard[index[a.step_started] : index[a.step_detected] + 1]
        if np.isfinite(window).any() and np.nanmax(window) >= HARD_WEIGHT:
            j = index[a.step_started] + int(np.nanargmax(window))
            tau = float(_col(t, "temperature")[j])
            msg = (
                f"τ = {tau:.3g} is too low: at step {steps[j]} the 10 hardest negatives of each anchor carry "
                f"{hard[j]:.0%} of its negative gradient weight (τ = 0.1 runs: at most 65 %), "
                f"so the loss chases a few neighbours while the {a.kind.replace('_', ' ')} slide runs."
            )
            tip = (
                f"Raise τ (contrastive.temperature = {tau:.3g} at that step; 0.1–0.2 is the usual range), or "
                "keep a floor on a learnable or scheduled τ."
            )
            out.append(
                Alarm(
                    "temperature_too_low",
                    "warning",
                    a.step_started,
                    a.step_detected,
                    msg,
                    _with_event(tip, ctx, a.step_before, a.step_started),
                    ["temperature"],
                    a.step_before,
                )
            )
            break
    return out


def _with_event(tip: str, ctx: RunContext, before: int | None, start: int) -> str:
    """The tip, after the τ switch in [before, start) if there is one (a warm-up ending is no τ cause)."""
    event = advice.explaining_event(ctx, before, start)
    if event is None or not any(w in event.key for w in ("temperature", "tau")):
        return tip
    return (
        f"{event.text} falls between the last snapshot before the change and the first after it: that "
        f"switch is the likely cause. {tip}"
    )
