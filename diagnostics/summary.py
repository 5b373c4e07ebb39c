"""One snapshot -> one dict of JSON-able numbers; a run's dicts -> one table the trend alarms read.

`summary_of(record)` is how everything reads a snapshot's summary: the record's numbers (diagnostics.record,
computed once by the engine) plus the verdict judged from them. `snapshot_summary` is the per-metric path the
engine replaced, kept as the reference it is tested and benchmarked against.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .collapse import diagnose
from .geometry import alignment, false_negative_rate, similarity_stats, uniformity
from .probes import knn_accuracy, probe_split
from runformat.metrics_lines import temperature_for  # noqa: F401  (moved there: τ is a run-file fact)
from runformat.reader import Run, Snapshot, finite_or_none


def _json(value):
    """Python scalars only; NaN and inf become None (JSON has neither)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    return value


def snapshot_summary(snap: Snapshot, temperature: float | None = None) -> dict:
    """The numbers the dashboard shows for one snapshot, computed on its finite rows (exact uniformity).

    Keys: step, n, finite_rows, dim, uniformity, effective_rank, normalized_std, inv_sqrt_d, dead_dims,
    mean_cos, alpha_req, nonfinite_rows, verdict, diverged, explanation, suggestions; with positives also
    alignment, pos_cos_mean, neg_cos_mean, pos_neg_gap, roc_auc, top1 and (given τ) infonce, softmax_entropy,
    infonce_bound; with features effective_rank_features; with labels knn_accuracy (weighted kNN, k=200,
    τ=0.1, on probe_split) and, with positives too, false_negative_rate (k=5)."""
    z = np.asarray(snap.embeddings)
    y = None if snap.positives is None else np.asarray(snap.positives)
    report = diagnose(z, snap.features)
    ok = np.isfinite(z).all(axis=1)
    if y is not None:
        ok &= np.isfinite(y).all(axis=1)
    zf = z[ok]
    yf = y[ok] if y is not None else None
    labels = None if snap.labels is None else np.asarray(snap.labels)[ok]
    n, d = z.shape
    nums = report.numbers
    out: dict = {
        "step": snap.step, "n": n, "finite_rows": int(ok.sum()), "dim": d,
        "uniformity": uniformity(zf) if len(zf) >= 2 else math.nan,
        "effective_rank": nums.get("effective_rank"), "normalized_std": nums.get("normalized_std"),
        "inv_sqrt_d": 1 / math.sqrt(d) if d else None, "dead_dims": nums.get("dead_dims"),
        "mean_cos": nums.get("mean_cos"), "alpha_req": nums.get("alpha_req"),
    }
    if "effective_rank_features" in nums:
        out["effective_rank_features"] = nums["effective_rank_features"]
    if yf is not None and len(zf):
        stats = similarity_stats(zf, yf, temperature=temperature)
        pos = float(stats.positive_cos.mean())
        neg = float(stats.negative_cos.mean()) if len(stats.negative_cos) else math.nan
        out.update({"alignment": alignment(zf, yf), "pos_cos_mean": pos, "neg_cos_mean": neg,
                    "pos_neg_gap": pos - neg, "roc_auc": stats.roc_auc, "top1": stats.top1_accuracy})
        if temperature is not None:
            out.update({"temperature": temperature, "infonce": stats.infonce,
                        "softmax_entropy": stats.softmax_entropy, "infonce_bound": stats.infonce_bound})
    if labels is not None and len(zf) >= 2:
        bank, query = probe_split(len(zf))
        out["knn_accuracy"] = knn_accuracy(zf[bank], labels[bank], zf[query], labels[query])
        if yf is not None:
            out["false_negative_rate"] = false_negative_rate(zf, yf, labels)
    out.update({"nonfinite_rows": int(n - ok.sum()), "verdict": report.verdict,
                "diverged": bool(report.diverged or not ok.all()), "explanation": report.explanation,
                "suggestions": list(report.suggestions)})
    if snap.paired_embeddings is not None:  # a second modality: modality gap, cross-modal recall (crossmodal.py)
        from .crossmodal import crossmodal_numbers
        out.update(crossmodal_numbers(snap.embeddings, snap.paired_embeddings))
    return {key: _json(value) for key, value in out.items()}


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
    (cheap; diagnostics.collapse.judge). `context`: optional collapse.CollapseThresholds. An error record
    keeps its numbers and says why in "error"; its verdict is judged on what it has (too few rows: none)."""
    from .collapse import judge

    numbers = dict(record.numbers)
    # histograms are bulky lists: a page reads them from record.numbers, the table and the CLI leave them out
    out = {"step": record.step, **{k: v for k, v in numbers.items() if k != "histograms"}}
    if record.error is not None:
        out["error"] = record.error
    if getattr(record, "stale", None):  # numbers of an older record key, shown marked until recomputed
        out["stale"] = record.stale
    facts = {"n": numbers.get("n"), "finite_rows": numbers.get("collapse_finite_rows", numbers.get("finite_rows")),
             "dim": numbers.get("dim")}
    if any(not isinstance(v, int) for v in facts.values()):
        return out
    try:
        report = judge({k: v for k, v in numbers.items() if v is not None} | facts, context)
    except (KeyError, TypeError):  # a spectrum number is missing (unmeasurable rows): no verdict to give
        return out
    nonfinite = numbers.get("nonfinite_rows") or 0
    out.update({"verdict": report.verdict, "diverged": bool(report.diverged or nonfinite > 0),
                "explanation": report.explanation if record.error is None else f"{record.error}. {report.explanation}",
                "suggestions": list(report.suggestions)})
    return out


def run_table_ready(run: Run, candidates: set[int] | None = None) -> tuple[pd.DataFrame, list[int]]:
    """(run_table of the snapshots whose record is ready, the committed steps still pending). Never computes.
    `candidates`: the steps that may have a record (a folder on disk); the others are pending unopened."""
    summaries, pending = ready_summaries(run, candidates)
    return run_table(summaries), pending


def ready_summaries(run: Run, candidates: set[int] | None = None) -> tuple[list[dict], list[int]]:
    """(summary_of each ready record, in step order; the committed steps still pending)."""
    from . import record as records

    summaries, pending = [], []
    for step in run.snapshot_steps():
        rec = records.load(run, step, stale=True) if candidates is None or step in candidates else None
        if rec is None:
            pending.append(step)
        else:
            summaries.append(summary_of(rec))
    return summaries, pending
