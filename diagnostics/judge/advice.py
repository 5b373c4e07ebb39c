"""What to try, fitted to the method a run uses (read from its config and metrics), and the config events
(a step at which something was switched) that can explain a change the alarms dated.

Pure functions of a `RunContext`: a config dict and a metrics DataFrame, both optional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

SUGGEST_DIVERGED = [
    "Lower the learning rate or add warm-up; clip gradients (e.g. max norm 1.0).",
    "If training in float16, use bfloat16 or a loss scaler: logits divided by a small temperature overflow.",
    "Resume from the last snapshot before the non-finite values appeared.",
]

# What the slide looks like, per signal (the alarm's first words).
SYMPTOM = {
    "spread": "The points are converging towards one spot.",
    "collapse": "The points are converging towards one spot.",
    "rank": "The embedding is losing directions.",
    "uniformity": "The points are bunching up on the sphere.",
    "gap": "Positives no longer stand out from negatives.",
    "knn": "Classes are mixing in the embedding.",
    "cone": "The points share an offset: they sit in a narrow cone of the sphere.",
    "diverged": "Training diverged: embeddings hold NaN or inf.",
    "unmeasurable": (
        "Too few finite rows to measure anything: log at least a few hundred rows per snapshot "
        "(and check that the ones logged are not NaN)."
    ),
    "tau_high": "The temperature τ is too high: the softmax barely tells the positive from the negatives.",
    "tau_low": "The temperature τ is too low: the loss pushes against a handful of hardest negatives per anchor.",
}

# Per method: the levers that matter for it, naming its config keys.
METHOD_TIPS = {
    "predictor": (
        "BYOL/SimSiam-style (no negatives): keep the stop-gradient on the target branch "
        "(predictor.stop_gradient) and the predictor head in place; without them the constant "
        "solution is reachable (Chen & He 2021)."
    ),
    "variance": (
        "VICReg/Barlow Twins-style (no negatives): the variance and covariance terms are what keep the "
        "embeddings apart (e.g. vicreg.variance, vicreg.covariance, barlow.lambda); with the invariance term "
        "alone the constant solution is reachable (Bardes et al. 2022)."
    ),
    "moco": (
        "MoCo: keep the queue full of negatives (contrastive.queue_size, K ≥ a few batches) and the key "
        "encoder slow (contrastive.momentum 0.99–0.999); dropping the queue leaves only the positive term."
    ),
    "generative": (
        "Generative + contrastive: the reconstruction/KL terms may be drowning the contrastive one; "
        "raise λ (contrastive.weight) or lengthen its warm-up (contrastive.warmup_steps)."
    ),
    "infonce": (
        "InfoNCE: check the negatives reach the loss (batch size, no pairing bug) and τ "
        "(contrastive.temperature): ~0.1–0.5 works; τ ≥ 1 lets points bunch, τ ≤ 0.02 chases a few "
        "hard negatives."
    ),
}


@dataclass
class RunContext:
    config: dict | None = None
    metrics: pd.DataFrame | None = None

    @classmethod
    def of_run(cls, run) -> "RunContext":
        """From a runformat Run: its config and metrics (a tail read; cheap)."""
        return cls(run.config, run.metrics())


@dataclass(frozen=True)
class Event:
    step: int
    key: str  # the config key or metric that changed
    text: str  # plain words, e.g. "contrastive.negatives_off_step = 150"


def _flat(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + str(k)] = v
    return out


# Variance-regularised objectives, known by name in the objective, a config section or a loss term.
VARIANCE_WORDS = ("vicreg", "barlow", "w-mse", "wmse")
VARIANCE_LOSSES = ("variance", "covariance", "invariance", "redundancy")


def methods(ctx: RunContext) -> list[str]:
    """The method families a run uses, most specific first: predictor, variance, moco, generative, infonce."""
    flat = _flat(ctx.config)
    cols = set(ctx.metrics.columns) if isinstance(ctx.metrics, pd.DataFrame) else set()
    objective = str(flat.get("contrastive.objective", "")).lower()
    found = []
    if any(k.startswith("predictor.") for k in flat) or objective in ("simsiam", "byol"):
        found.append("predictor")
    named = [objective, *(k.split(".")[0].lower() for k in flat)]
    if any(w in n for n in named for w in VARIANCE_WORDS) or any(
        str(c).lower().rsplit("/", 1)[-1] in VARIANCE_LOSSES for c in cols
    ):
        found.append("variance")
    if objective == "moco":
        found.append("moco")
    if str(flat.get("model.kind", "")) in ("vae", "ae") or {"loss/reconstruction", "loss/kl"} & cols:
        found.append("generative")
    if objective in ("nt_xent", "hard_negative", "infonce", "clip") or (not found and "temperature" in cols):
        found.append("infonce")
    return found


def config_events(ctx: RunContext) -> list[Event]:
    """Steps at which the config switches something (keys ending in `_step` with a value > 0, warm-up ends)
    and piecewise-constant changes of the logged temperature; sorted by step."""
    flat = _flat(ctx.config)
    events = []
    for key, value in flat.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            continue
        if key.endswith("_step"):
            after = next((flat[k] for k in (key[:-5] + "_after", key[:-5]) if k in flat and k != key), None)
            events.append(Event(int(value), key, f"{key} = {value:g}" + (f" (→ {after})" if after is not None else "")))
        elif key.endswith("warmup_steps"):
            events.append(Event(int(value), key, f"{key} = {value:g}: the warm-up ends"))
    if (
        isinstance(ctx.metrics, pd.DataFrame)
        and "temperature" in ctx.metrics.columns
        and not any(e.key.startswith("contrastive.temperature") for e in events)
    ):
        m = ctx.metrics[["step", "temperature"]].dropna()
        tau = m["temperature"].to_numpy(float)
        jumps = [i for i in range(1, len(tau)) if abs(tau[i] - tau[i - 1]) > 0.05 * abs(tau[i - 1])]
        if 1 <= len(jumps) <= 3:  # a schedule with a few steps, not a learnable or smooth τ
            events += [
                Event(int(m["step"].iloc[i]), "temperature", f"τ {tau[i - 1]:.3g} → {tau[i]:.3g}") for i in jumps
            ]
    return sorted(events, key=lambda e: (e.step, e.key))


def run_events(config: dict | None, metrics: pd.DataFrame | None = None) -> list[Event]:
    """config_events of a run given its config (and metrics): what the chart markers draw."""
    return config_events(RunContext(config, metrics))


def explaining_event(ctx: RunContext, before: int | None, start: int) -> Event | None:
    """The config event in [before, start): a snapshot at step s is written before update s (training/train.py),
    so a switch at step e first shows in the first snapshot after e."""
    lo = before if before is not None else -1
    hits = [e for e in config_events(ctx) if lo <= e.step < start]
    return hits[-1] if hits else None


def suggestion(signal: str, ctx: RunContext, before: int | None = None, start: int | None = None) -> str:
    """One paragraph: the symptom and the config event that explains the change when one does (the specific
    cause, said alone); only when none does, the method's levers (generic advice)."""
    parts = [SYMPTOM.get(signal, "")]
    event = explaining_event(ctx, before, start) if start is not None else None
    if event is not None:
        parts.append(
            f"{event.text} falls between the last snapshot before the change and the first after it: "
            "that switch is the likely cause; undo it or move it later."
        )
        return " ".join(p for p in parts if p)
    found = methods(ctx)
    parts += [METHOD_TIPS[m] for m in found[:2]]
    if not found:
        parts.append("Check the negatives (batch size, pairing), the temperature τ and the learning rate.")
    return " ".join(p for p in parts if p)


# The signal behind each verdict of the ladder (alarms.LADDER); "healthy" has nothing to try.
VERDICT_SIGNAL = {
    "diverged": "diverged",
    "unmeasurable": "unmeasurable",
    "cone": "cone",
    "degrading": "gap",
    "narrowing": "rank",
    "contracting": "spread",
    "collapsing": "collapse",
    "dimensional_collapse": "rank",
    "complete_collapse": "collapse",
}


def verdict_advice(verdict: str, step: int, alarms, ctx: RunContext) -> list[str]:
    """What to try at a snapshot judged `verdict`, in the alarms' own words: the suggestion of the alarm
    behind it (begun by `step`; the one of the verdict's own kind first, then a critical one, then the
    earliest), so the verdict card and the banner say the same thing and name the same config event; with no
    such alarm, the advice for the verdict's signal. `alarms`: alarms.trend_alarms of the run (with `ctx`)."""
    signal = VERDICT_SIGNAL.get(verdict)
    if signal is None:
        return []
    begun = [a for a in alarms if a.step_started <= step]
    if begun:
        lead = min(
            begun, key=lambda a: (a.kind != verdict, a.severity == "info", a.severity != "critical", a.step_started)
        )
        return [lead.suggestion]
    return [suggestion(signal, ctx)]
