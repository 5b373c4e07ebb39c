"""The detector as it was before issue 11 (commit 4d025b4), kept verbatim for side-by-side scores in
bench/score_detectors.py: best-so-far trend rules and the per-snapshot verdict (std < 0.1× → complete,
centred rank fraction < 0.15 → dimensional). Not used by the project."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

SUGGEST_DIVERGED = ["Lower the learning rate or add warm-up; clip gradients (e.g. max norm 1.0)."]
SUGGEST_COMPLETE = [
    "Check the negatives.",
    "Lower the learning rate; a too-large step can throw the encoder into a constant solution.",
]
SUGGEST_DIMENSIONAL = ["Use more or harder negatives.", "Raise the temperature."]


def old_verdict(row) -> str:
    """The old judge, on the numbers it read (std_ratio, rank_fraction)."""
    ratio, frac = row.get("std_ratio"), row.get("rank_fraction")
    if ratio is None or pd.isna(ratio):
        return "healthy"
    if ratio < 0.1:
        return "complete_collapse"
    return "dimensional_collapse" if frac < 0.15 else "healthy"


@dataclass
class TrendRules:
    """When `trend_alarms` fires. Each rule compares a snapshot with the best value seen before it."""

    rank_drop_fraction: float = 0.3  # effective rank below (1 − this) × its best so far
    uniformity_rise: float = 0.5  # uniformity (log, lower is better) this many nats above its best so far
    gap_drop_fraction: float = 0.5  # pos_neg_gap below (1 − this) × its best so far (best > 0)


@dataclass
class Alarm:
    kind: str  # rank_falling, uniformity_rising, gap_closing, nonfinite, dimensional_collapse, ...
    severity: str  # "info" (a collapse that recovered), "warning" or "critical"
    step_started: int  # the first snapshot of the trouble (e.g. the one right after the best value)
    step_detected: int  # the first snapshot where the rule fired
    message: str
    suggestion: str


def _falling(steps, values, worse, kind, name, rules_text, suggestion, higher_is_better=True):
    """First snapshot where `worse(value, best_so_far)` holds; the trouble began right after the best."""
    best_i = None
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            continue
        if best_i is not None and worse(v, values[best_i]):
            start = steps[min(best_i + 1, i)]
            msg = (
                f"{name} went from its best {values[best_i]:.3g} (step {steps[best_i]}) to {v:.3g} at step "
                f"{steps[i]} ({rules_text}); the decline began at step {start}."
            )
            return Alarm(kind, "warning", int(start), int(steps[i]), msg, suggestion)
        if best_i is None or (v > values[best_i] if higher_is_better else v < values[best_i]):
            best_i = i
    return None


def trend_alarms(table: pd.DataFrame, rules: TrendRules | None = None) -> list[Alarm]:
    """Alarms over a run's per-snapshot table (summary.run_table: step, effective_rank, uniformity,
    pos_neg_gap, nonfinite_rows, verdict; missing columns skip their rule). At most one alarm per kind,
    for its first occurrence, ordered by the step it was detected."""
    r = rules or TrendRules()
    if not isinstance(table, pd.DataFrame) or "step" not in table.columns:
        raise ValueError("table: needs a DataFrame with a 'step' column (summary.run_table)")
    t = table.sort_values("step").reset_index(drop=True)
    steps = [int(s) for s in t["step"]]
    col = lambda c: [float(v) if v is not None and not pd.isna(v) else math.nan for v in t[c]]  # noqa: E731
    alarms: list[Alarm] = []
    if "effective_rank" in t:
        f = r.rank_drop_fraction
        alarms.append(
            _falling(
                steps,
                col("effective_rank"),
                lambda v, b: v < (1 - f) * b,
                "rank_falling",
                "Effective rank",
                f"more than {f:.0%} below its best",
                SUGGEST_DIMENSIONAL[0] + " " + SUGGEST_DIMENSIONAL[1],
            )
        )
    if "uniformity" in t:
        alarms.append(
            _falling(
                steps,
                col("uniformity"),
                lambda v, b: v > b + r.uniformity_rise,
                "uniformity_rising",
                "Uniformity",
                f"more than {r.uniformity_rise} above its best",
                "Points are bunching up: " + SUGGEST_DIMENSIONAL[1],
                higher_is_better=False,
            )
        )
    if "pos_neg_gap" in t:
        f = r.gap_drop_fraction
        alarms.append(
            _falling(
                steps,
                col("pos_neg_gap"),
                lambda v, b: b > 0 and v < (1 - f) * b,
                "gap_closing",
                "Positive–negative cosine gap",
                f"more than {f:.0%} below its best",
                "Positives no longer stand out from negatives: check the augmentations and "
                "the pairing; " + SUGGEST_COMPLETE[1].lower(),
            )
        )
    alarms.append(_nonfinite_alarm(t, steps))
    if "verdict" in t:
        for i, verdict in enumerate(t["verdict"]):
            if verdict in ("dimensional_collapse", "complete_collapse") and not any(
                a and a.kind == verdict for a in alarms
            ):
                severity = "critical" if verdict == "complete_collapse" else "warning"
                tip = (SUGGEST_COMPLETE if verdict == "complete_collapse" else SUGGEST_DIMENSIONAL)[0]
                message = f"The verdict turned to {verdict.replace('_', ' ')} at step {steps[i]}."
                recovered = [s for s, v in zip(steps[i:], t["verdict"].iloc[i:]) if v != verdict]
                if t["verdict"].iloc[-1] != verdict and recovered:
                    # early collapse that training undid (e.g. before the λ warm-up ends): worth knowing, not alarming
                    severity, message = "info", message + f" It recovered by step {recovered[0]}."
                alarms.append(Alarm(verdict, severity, steps[i], steps[i], message, tip))
    return sorted((a for a in alarms if a), key=lambda a: (a.step_detected, a.kind))


def _nonfinite_alarm(t: pd.DataFrame, steps: list[int]) -> Alarm | None:
    """Non-finite embedding rows, or a metric that had been finite turning NaN."""
    metric_cols = [c for c in ("effective_rank", "uniformity", "pos_neg_gap") if c in t]
    seen_finite = {c: False for c in metric_cols}
    for i in range(len(t)):
        bad = (
            int(t["nonfinite_rows"].iloc[i] or 0)
            if "nonfinite_rows" in t and not pd.isna(t["nonfinite_rows"].iloc[i])
            else 0
        )
        why = f"{bad} embedding rows are NaN/inf" if bad else ""
        for c in metric_cols:
            v = t[c].iloc[i]
            finite = v is not None and not pd.isna(v) and math.isfinite(float(v))
            if not finite and seen_finite[c] and not why:
                why = f"{c} became NaN"
            seen_finite[c] |= finite
        if why:
            return Alarm(
                "nonfinite",
                "critical",
                steps[i],
                steps[i],
                f"Training diverged at step {steps[i]}: {why}.",
                SUGGEST_DIVERGED[0],
            )
    return None


def old_detector(table: pd.DataFrame) -> tuple[list[Alarm], list[str]]:
    """(alarms, per-snapshot verdicts) as the old code gave them."""
    t = table.sort_values("step").reset_index(drop=True).copy()
    t["verdict"] = [old_verdict(r) for r in t.to_dict("records")]
    return trend_alarms(t), list(t["verdict"])
