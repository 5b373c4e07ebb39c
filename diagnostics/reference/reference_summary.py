"""The reference summary of a snapshot: the per-metric path the engine replaced, one function per number
(reference_collapse.diagnose, geometry, probes), kept as the reference the engine is tested and benchmarked
against (tests/test_engine.py, bench/bench_engine.py). Production code never imports this module
(tests/test_reference_boundary.py); everything reads summary.summary_of(record) instead.
"""

from __future__ import annotations

import math

import numpy as np

from runformat.reader import Snapshot, finite_or_none

from ..measure._primitives import probe_split
from ..measure.crossmodal import crossmodal_numbers
from .geometry import alignment, false_negative_rate, similarity_stats, uniformity
from .probes import knn_accuracy
from .reference_collapse import diagnose


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
        "step": snap.step,
        "n": n,
        "finite_rows": int(ok.sum()),
        "dim": d,
        "uniformity": uniformity(zf) if len(zf) >= 2 else math.nan,
        "effective_rank": nums.get("effective_rank"),
        "normalized_std": nums.get("normalized_std"),
        "inv_sqrt_d": 1 / math.sqrt(d) if d else None,
        "dead_dims": nums.get("dead_dims"),
        "mean_cos": nums.get("mean_cos"),
        "alpha_req": nums.get("alpha_req"),
    }
    if "effective_rank_features" in nums:
        out["effective_rank_features"] = nums["effective_rank_features"]
    if yf is not None and len(zf):
        stats = similarity_stats(zf, yf, temperature=temperature)
        pos = float(stats.positive_cos.mean())
        neg = float(stats.negative_cos.mean()) if len(stats.negative_cos) else math.nan
        out.update(
            {
                "alignment": alignment(zf, yf),
                "pos_cos_mean": pos,
                "neg_cos_mean": neg,
                "pos_neg_gap": pos - neg,
                "roc_auc": stats.roc_auc,
                "top1": stats.top1_accuracy,
            }
        )
        if temperature is not None:
            out.update(
                {
                    "temperature": temperature,
                    "infonce": stats.infonce,
                    "softmax_entropy": stats.softmax_entropy,
                    "infonce_bound": stats.infonce_bound,
                }
            )
    if labels is not None and len(zf) >= 2:
        bank, query = probe_split(len(zf))
        out["knn_accuracy"] = knn_accuracy(zf[bank], labels[bank], zf[query], labels[query])
        if yf is not None:
            out["false_negative_rate"] = false_negative_rate(zf, yf, labels)
    out.update(
        {
            "nonfinite_rows": int(n - ok.sum()),
            "verdict": report.verdict,
            "diverged": bool(report.diverged or not ok.all()),
            "explanation": report.explanation,
            "suggestions": list(report.suggestions),
        }
    )
    if snap.paired_embeddings is not None:  # a second modality: modality gap, cross-modal recall (crossmodal.py)
        out.update(crossmodal_numbers(snap.embeddings, snap.paired_embeddings))
    return {key: _json(value) for key, value in out.items()}
