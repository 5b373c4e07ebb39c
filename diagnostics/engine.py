"""The snapshot engine: one snapshot in, every per-snapshot number and per-row array out (a record's content).

(First slice: built on the per-metric functions; the one-pass sweep replaces the inside.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runformat.reader import Snapshot

VERDICT_KEYS = ("verdict", "diverged", "explanation", "suggestions")


@dataclass
class EngineConfig:
    hard_k: int = 10               # hardest negatives kept per row
    fnr_k: int = 5                 # false-negative rate over the fnr_k hardest (as today)
    bins: int = 80                 # histogram bins over cosine in [-1, 1]
    max_negatives: int = 200_000   # negative_cos_sample size (all i≠j pairs when there are fewer)
    exact_limit: int = 100_000     # above this many rows: subsampled estimates with standard errors
    seed: int = 0


def _unusable(z: np.ndarray) -> str | None:
    if z.ndim != 2:
        return f"embeddings: needs a 2-D array (N×d), got shape {z.shape}"
    if z.shape[1] == 0:
        return "embeddings: d = 0 (no dimensions to measure)"
    if z.shape[0] < 2:
        return f"embeddings: N = {z.shape[0]}; at least 2 rows are needed to measure pairs"
    return None


def measure_snapshot(snap: Snapshot, temperature: float | None = None, config: EngineConfig | None = None,
                     ) -> tuple[dict, dict[str, np.ndarray]]:
    """(numbers, per-row arrays) of a snapshot; numbers["error"] says why when it cannot be measured."""
    from . import collapse, summary
    from .geometry import _histogram, similarity_stats

    cfg = config or EngineConfig()
    z = np.asarray(snap.embeddings)
    n = int(z.shape[0]) if z.ndim else 0
    d = int(z.shape[1]) if z.ndim == 2 else 0
    base = {"step": snap.step, "n": n, "finite_rows": 0, "dim": d, "nonfinite_rows": n, "estimated": False}
    why = _unusable(z)
    if why:
        return {**base, "error": why}, {}
    ok = np.isfinite(z).all(axis=1)
    y = None if snap.positives is None else np.asarray(snap.positives)
    if y is not None:
        ok &= np.isfinite(y).all(axis=1)
    if ok.sum() < 2:
        return {**base, "finite_rows": int(ok.sum()),
                "error": f"only {int(ok.sum())} of {n} rows are finite (NaN/inf): nothing to measure"}, {}
    numbers = {k: v for k, v in summary.snapshot_summary(snap, temperature).items() if k not in VERDICT_KEYS}
    extra = collapse.collapse_numbers(z, snap.features)
    numbers.update({k: extra.get(k) for k in ("effective_rank_centred", "rank_fraction", "std_ratio",
                                               "feature_dim") if k in extra})
    numbers["collapse_finite_rows"] = extra["finite_rows"]
    numbers["estimated"] = False
    arrays: dict[str, np.ndarray] = {"spectrum": collapse.singular_spectrum(z[np.isfinite(z).all(axis=1)])}
    hist = {}
    if y is not None:
        s = similarity_stats(z[ok], y[ok], temperature=temperature, k=cfg.hard_k, max_negatives=cfg.max_negatives,
                             seed=cfg.seed, bins=cfg.bins)
        arrays.update(positive_cos=s.positive_cos, positive_rank=s.positive_rank,
                      hardest_negative_cos=s.hardest_negative_cos, hardest_negative_index=s.hardest_negative_index,
                      negative_cos_sample=s.negative_cos)
        numbers["negatives_sampled"] = bool(s.negatives_sampled)
        hard = s.hardest_negative_cos[:, 0] if s.hardest_negative_cos.shape[1] else np.zeros(0, np.float32)
        for name, values in (("positive", s.positive_cos), ("negative", s.negative_cos), ("hardest_negative", hard)):
            counts, edges = _histogram(values, cfg.bins, -1.0, 1.0)
            hist[name] = {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]}
    numbers["histograms"] = hist or None
    return numbers, arrays
