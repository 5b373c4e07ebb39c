"""One snapshot -> one dict of JSON-able numbers; a run's dicts -> one table the trend alarms read.

`summary_of(record)` is how everything reads a snapshot's summary: the record's numbers (diagnostics.store.record,
computed once by the engine) plus the verdict judged from them. The per-metric path the engine replaced,
`snapshot_summary`, is the reference it is tested and benchmarked against (diagnostics/reference/reference_summary.py).
"""

from __future__ import annotations

import pandas as pd

from runformat.reader import Run


def run_table(summaries: list[dict]) -> pd.DataFrame:
    """One row per step, sorted by step (a repeated step keeps its last summary)."""
    rows = [s for s in summaries if isinstance(s, dict) and s.get("step") is not None]
    if not rows:
        return pd.DataFrame(columns=["step"])
    table = pd.DataFrame.from_records(rows)
    table["step"] = table["step"].astype("int64")
    table = table.drop_duplicates("step", keep="last").sort_values("step", kind="stable")
    return table.reset_index(drop=True)


# -- from records -----------------------------------------------------------------------------------


def summary_of(record, context=None) -> dict:
    """A record's numbers plus the verdict, its explanation and suggestions, judged now from the numbers
    (cheap; diagnostics.judge.collapse.judge). `context`: optional collapse.CollapseThresholds. An error record
    keeps its numbers and says why in "error"; its verdict is judged on what it has (too few rows: none)."""
    from .collapse import judge

    numbers = dict(record.numbers)
    # histograms are bulky lists: a page reads them from record.numbers, the table and the CLI leave them out
    out = {"step": record.step, **{k: v for k, v in numbers.items() if k != "histograms"}}
    if record.error is not None:
        out["error"] = record.error
    if getattr(record, "stale", None):  # numbers of an older record key, shown marked until recomputed
        out["stale"] = record.stale
    facts = {
        "n": numbers.get("n"),
        "finite_rows": numbers.get("collapse_finite_rows", numbers.get("finite_rows")),
        "dim": numbers.get("dim"),
    }
    if any(not isinstance(v, int) for v in facts.values()):
        return out
    try:
        report = judge({k: v for k, v in numbers.items() if v is not None} | facts, context)
    except (KeyError, TypeError):  # a spectrum number is missing (unmeasurable rows): no verdict to give
        return out
    nonfinite = numbers.get("nonfinite_rows") or 0
    out.update(
        {
            "verdict": report.verdict,
            "diverged": bool(report.diverged or nonfinite > 0),
            "explanation": report.explanation if record.error is None else f"{record.error}. {report.explanation}",
            "suggestions": list(report.suggestions),
        }
    )
    return out


def run_table_ready(run: Run, candidates: set[int] | None = None) -> tuple[pd.DataFrame, list[int]]:
    """(run_table of the snapshots whose record is ready, the committed steps still pending). Never computes.
    `candidates`: the steps that may have a record (a folder on disk); the others are pending unopened."""
    summaries, pending = ready_summaries(run, candidates)
    return run_table(summaries), pending


def ready_summaries(run: Run, candidates: set[int] | None = None) -> tuple[list[dict], list[int]]:
    """(summary_of each ready record, in step order; the committed steps still pending)."""
    from ..store import record as records

    summaries, pending = [], []
    for step in run.snapshot_steps():
        rec = records.load(run, step, stale=True) if candidates is None or step in candidates else None
        if rec is None:
            pending.append(step)
        else:
            summaries.append(summary_of(rec))
    return summaries, pending
