"""One judgement of a run: its verdict, the step since which it holds (the onset of the finding behind it), the
words and what to try, and every finding with its own onset. Home, Live's banner, Collapse's card, Compare,
Review, the report and `summarize` all read it from here, so they say the same thing.

    findings = trend alarms (diagnostics.judge.alarms: the slide, end states, divergence)
             + temperature findings (diagnostics.judge.temperature_signals: τ too high / too low)
             + loss balance (diagnostics.judge.loss_balance: the reconstruction climbing while λ wins)
    verdict at a step = the ladder's (alarms.run_verdicts), or the τ / loss-balance finding's where the ladder
    sees nothing

Pure functions of a run table (summary.run_table) and a RunContext; the worker keeps the result beside the
records (diagnostics.judge.run_state), a page without it computes the same thing the same way.
"""

from __future__ import annotations

from dataclasses import asdict, fields

import pandas as pd

from .advice import RunContext, verdict_advice
from .alarms import LADDER, Alarm, run_verdicts, signals_for, trend_alarms
from .loss_balance import loss_balance_alarms
from .temperature_signals import temperature_alarms

JUDGEMENT_VERSION = 2  # 2: raw geometry for variance-regularised methods, end states dated by episode, loss balance
TEMPERATURE_VERDICTS = ("temperature_too_high", "temperature_too_low")
# Findings that name a cause where the geometry looks fine: the run's verdict where the ladder sees nothing
CAUSE_VERDICTS = TEMPERATURE_VERDICTS + ("reconstruction_rising",)
RUN_VERDICTS = LADDER + CAUSE_VERDICTS
SEVERITIES = ("info", "warning", "critical")
# What each run verdict weighs in the gate (summarize --fail-on): end states and a slide to one point are
# critical, a slide that has not reached one and a mis-set τ are warnings.
VERDICT_SEVERITY = {
    "healthy": None,
    "cone": None,
    "degrading": "warning",
    "narrowing": "warning",
    "contracting": "warning",
    "temperature_too_high": "warning",
    "temperature_too_low": "warning",
    "reconstruction_rising": "warning",
    "collapsing": "critical",
    "dimensional_collapse": "critical",
    "complete_collapse": "critical",
    "diverged": "critical",
    "unmeasurable": "critical",
}
FINDING_FIELDS = tuple(f.name for f in fields(Alarm))  # what each kept finding holds


def findings(table: pd.DataFrame, context: RunContext | None = None) -> list[Alarm]:
    """Every finding over the run table, ordered by the step it was detected."""
    if not len(table) or "step" not in table:
        return []
    trend = trend_alarms(table, context=context)
    found = trend + temperature_alarms(table, trend, context) + loss_balance_alarms(table, context)
    return sorted(found, key=lambda a: (a.step_detected, a.kind))


def lead(found: list[Alarm]) -> Alarm | None:
    """The finding a headline names and dates: the earliest-begun critical one, else the earliest-begun
    warning; None when nothing is current. Its onset is the run's "since" on Home and Live's "trouble since"."""
    current = [a for a in found if a.severity != "info"]
    return min(current, key=lambda a: (a.severity != "critical", a.step_started, a.step_detected), default=None)


def _cause(found: list[Alarm], step: int) -> Alarm | None:
    """A current τ or loss-balance finding begun by `step`: the specific cause, said first."""
    return next(
        (a for a in found if a.kind in CAUSE_VERDICTS and a.severity != "info" and a.step_started <= step), None
    )


def judged(table: pd.DataFrame, step: int, found: list[Alarm], context: RunContext | None = None) -> dict | None:
    """The verdict at `step` as every view shows it: {"verdict", "explanation", "suggestions"} from the ladder
    over the run's history ("collapsing" while a slide is under way, where the snapshot alone may read "cone")
    and the findings (`found`: findings(table, context)); None when `table` has no snapshot at `step`."""
    if table is None or not len(table) or "step" not in table:
        return None
    ladder = run_verdicts(table, signals=signals_for(context))
    rows = ladder[ladder["step"] == step]
    if rows.empty:
        return None
    row = rows.iloc[-1]
    verdict = str(row["verdict"] or "unknown")
    explanation = (
        row["explanation"] if isinstance(row["explanation"], str) and row["explanation"] else verdict.replace("_", " ")
    )
    suggestions = verdict_advice(verdict, step, found, context or RunContext())
    cause = _cause(found, step)
    if cause is not None:
        if verdict in ("healthy", "cone"):
            verdict, explanation = cause.kind, f"{cause.message} {explanation}"
        else:
            explanation = f"{explanation} Likely cause: {cause.message}"
        suggestions = [cause.suggestion] + [s for s in suggestions if s != cause.suggestion]
    return {"verdict": verdict, "explanation": explanation, "suggestions": suggestions}


def judge_run(table: pd.DataFrame, context: RunContext | None = None) -> dict | None:
    """{"version", "verdict", "since", "explanation", "suggestions", "severity", "step", "findings"} at the run's
    last snapshot; None for a table without snapshots. `since`: the onset of the finding behind the verdict
    (lead), else the step since which the verdict has held; `severity`: the gate's weight (VERDICT_SEVERITY,
    raised by any current finding); findings: dicts with the Alarm fields."""
    if table is None or not len(table) or "step" not in table:
        return None
    found = findings(table, context)
    steps = sorted(int(s) for s in table["step"])
    now = judged(table, steps[-1], found, context)
    ladder = run_verdicts(table, signals=signals_for(context))["verdict"].tolist()
    first = len(ladder) - 1
    while first > 0 and ladder[first - 1] == ladder[-1]:
        first -= 1
    verdict = now["verdict"]
    behind = lead(found) if VERDICT_SEVERITY.get(verdict) else None
    since = behind.step_started if behind is not None else steps[first]
    return {
        "version": JUDGEMENT_VERSION,
        "verdict": verdict,
        "since": int(since),
        "step": steps[-1],
        "explanation": now["explanation"],
        "suggestions": now["suggestions"],
        "severity": severity(verdict, found),
        "findings": [asdict(a) for a in found],
    }


def severity(verdict: str, found: list) -> str | None:
    """The highest of the verdict's weight and each current finding's severity ("info" is history)."""
    levels = [VERDICT_SEVERITY.get(verdict)] + [a["severity"] if isinstance(a, dict) else a.severity for a in found]
    ranked = [SEVERITIES.index(s) for s in levels if s in SEVERITIES[1:]]
    return SEVERITIES[max(ranked)] if ranked else None


def fails(judgement: dict | None, level: str) -> bool:
    """Whether the gate at `level` ("critical" or "warning") fails on this judgement."""
    if level not in SEVERITIES[1:]:
        raise ValueError(f"--fail-on: 'critical' or 'warning', got {level!r}")
    got = (judgement or {}).get("severity")
    return got in SEVERITIES and SEVERITIES.index(got) >= SEVERITIES.index(level)


def alarms_of(judgement: dict) -> list[Alarm]:
    """The findings of a kept judgement as Alarm objects (what the banner and the figures' markers read)."""
    return [Alarm(**f) for f in judgement.get("findings", [])]
