"""Alignment and uniformity per group of every groupable column ("label" and the metadata columns with at most
MAX_GROUPS distinct values), computed by the worker beside a snapshot's record so a page reads a table at any N.

One table per column, the columns of geometry.breakdown (group, n, share, alignment, uniformity,
uniformity_to_all, uniformity_contribution) over the rows the engine measured (finite in every view). The
last two come from the engine's per-row kernel sums (its ẑẑᵀ sweep), so they cost O(N) per column. The
within-group uniformity is a pass over the group's pairs: exact up to EXACT_GROUP rows, above that from a
uniform sample of EXACT_GROUP²/n anchor rows against the whole group (sweep.uniformity), with
`uniformity_se` and `estimated` = True, so no column costs more than N·EXACT_GROUP pairs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ._primitives import logsumexp
from ._tensor import as_matrix, best_device, normalize
from .sweep import sample_anchors, uniformity

# A column with more distinct values than this is continuous (a score, an id), not a grouping; the dashboard
# offers the same columns (dashboard.data.MAX_GROUPS).
MAX_GROUPS = 50
# 5,000² = 25 M pairs per group (~0.3 s on one core): a 50k snapshot's label column (10 × 5,000) stays exact;
# a group of 40,000 is estimated from 625 anchors × 40,000 pairs, its standard error ~1e-3 on typical data.
EXACT_GROUP = 5_000
COLUMNS = (
    "group",
    "n",
    "share",
    "alignment",
    "uniformity",
    "uniformity_se",
    "estimated",
    "uniformity_to_all",
    "uniformity_contribution",
)


def groupable(snap) -> dict[str, np.ndarray]:
    """{column name: one value per snapshot row} for "label" and each metadata column with ≤ MAX_GROUPS
    distinct values (missing values count as one)."""
    found = {} if snap.labels is None else {"label": np.asarray(snap.labels)}
    for name in snap.metadata.columns:
        values = snap.metadata[name]
        if values.nunique(dropna=False) <= MAX_GROUPS:
            found[str(name)] = values.to_numpy()
    return found


def breakdowns(
    snap, rows: np.ndarray, kernel_log_rows: np.ndarray | None, t: float = 2.0, alpha: float = 2.0, seed: int = 0
) -> dict[str, list[dict]]:
    """{column: [one dict per group, COLUMNS]} for every groupable column of `snap`, over the snapshot rows
    `rows` (the engine's measured rows); kernel_log_rows: the engine's log Σ_{j≠i} kernel per snapshot row
    (NaN where not measured), None when the engine estimated (then uniformity_to_all and the contribution
    are None)."""
    columns = groupable(snap)
    if not columns or len(rows) < 2:
        return {}
    dev = best_device()
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(dev)
    xn = normalize(as_matrix(snap.embeddings, "embeddings", dev)[index])
    yn = None if snap.positives is None else normalize(as_matrix(snap.positives, "positives", dev)[index])
    n = len(rows)
    log_rows = None if kernel_log_rows is None else np.asarray(kernel_log_rows, dtype=np.float64)[rows]
    log_total = None if log_rows is None else logsumexp(log_rows)
    out = {}
    for name, values in columns.items():
        codes, uniques = pd.factorize(pd.Series(values[rows]), use_na_sentinel=False)
        table = []
        for code, group in enumerate(uniques):
            members = np.flatnonzero(codes == code)
            m = len(members)
            idx = torch.from_numpy(members).to(dev)
            u, u_se = uniformity(xn[idx], t, sample_anchors(m, EXACT_GROUP, seed, dev)) if m > 1 else (None, None)
            row = {
                "group": _json_value(group),
                "n": m,
                "share": m / n,
                "alignment": None if yn is None else float((xn[idx] - yn[idx]).norm(dim=1).pow(alpha).mean()),
                "uniformity": u,
                "uniformity_se": u_se,
                "estimated": m > EXACT_GROUP,
                "uniformity_to_all": None,
                "uniformity_contribution": None,
            }
            if log_rows is not None:
                log_group = logsumexp(log_rows[members])
                row["uniformity_to_all"] = log_group - math.log(m * (n - 1))
                row["uniformity_contribution"] = float(np.exp(log_group - log_total))
            table.append(row)
        out[name] = table
    return out


def table(rows: list[dict]) -> pd.DataFrame:
    """One stored breakdown as geometry.breakdown's DataFrame (sorted by group; None values as NaN)."""
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for col in COLUMNS[2:]:
        if col != "estimated":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
    try:
        frame = frame.sort_values("group", kind="stable")
    except TypeError:  # mixed types: keep first-seen order, as geometry.breakdown does
        pass
    return frame.reset_index(drop=True)


def _json_value(value):
    """A group value JSON can hold as itself: numpy scalars as Python ones, a missing value as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value if isinstance(value, (bool, int, float, str)) else str(value)
