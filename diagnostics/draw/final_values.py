"""Compare's run table: one row per run, one column per key metric, rounded, with units in the headers.

Pure: the runs' metric frames and latest-snapshot summaries in, a DataFrame out (numbers stay numbers, so the
table sorts by any column and Home's grouping averages them across seeds). The values come from
compare.final_metrics (the last finite value, or the best one where "best" means something).
"""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from .compare import final_metrics

SIGNIFICANT = 4  # digits kept: enough to tell seeds apart, few enough to read down a column
# Units of the metric names the trainer logs (docs/architecture.md); a metric not named here has none shown.
UNITS = {
    "loss/contrastive": "nats",
    "loss/kl": "nats",
    "batch/softmax_entropy": "nats",
    "batch/infonce_bound": "nats",
    "loss/total": "per sample",
    "loss/reconstruction": "sq. error per sample",
    "eval/psnr": "dB",
    "batch/pos_cos": "cosine",
    "batch/neg_cos": "cosine",
    "batch/hardest_neg_cos": "cosine",
    "batch/top1": "fraction",
    "gen/conditional_accuracy": "fraction",
}
# The latest snapshot's numbers (its record, judged on read by summary.summary_of): column -> summary key.
SNAPSHOT_COLUMNS = {
    "alignment (E‖x̂−x̂⁺‖²)": "alignment",
    "uniformity (nats)": "uniformity",
    "effective rank (dims)": "effective_rank",
    "kNN accuracy (fraction)": "knn_accuracy",
}


# The table rule: what a reader looks for first, left, pinned or in view at 1100 px; the metrics after them.
KEY_COLUMNS = ["run", "verdict", "status", "last step"]


def key_first(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with KEY_COLUMNS (those it has) first: at 1400 px the verdict, last of 12 columns, was cut off."""
    first = [c for c in KEY_COLUMNS if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def header(metric: str) -> str:
    """ "eval/psnr (dB)": the metric's name with its unit, where known."""
    unit = UNITS.get(metric)
    return f"{metric} ({unit})" if unit else metric


# Columns whose values are fractions of 1: shown as percentages.
FRACTION_COLUMNS = {header(m) for m, u in UNITS.items() if u == "fraction"} | {"kNN accuracy (fraction)"}


def rounded(value, digits: int = SIGNIFICANT) -> float:
    """`value` to `digits` significant digits, still a number (NaN and ±inf pass through)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def run_rows(
    frames: Mapping[str, pd.DataFrame],
    metrics: list[str],
    summaries: Mapping[str, dict | None] = {},
    statuses: Mapping[str, str] = {},
    which: str = "last",
) -> pd.DataFrame:
    """One row per run of `frames` (in order): run, status, last step, each metric's `which` value ("last" or
    "best"; a metric with no best, such as the learning rate, shows its last), the latest snapshot's
    alignment, uniformity, effective rank and kNN accuracy, and its verdict. Numbers rounded to SIGNIFICANT
    digits; a metric a run never logged is NaN."""
    if which not in ("last", "best"):
        raise ValueError(f"which: 'last' or 'best', got {which!r}")
    long = final_metrics(frames, metrics)
    if which == "best":
        long = long.assign(last=long["best"].where(long["best"].notna(), long["last"]))
    values = long.pivot(index="run", columns="metric", values="last") if len(long) else pd.DataFrame()
    rows = []
    for run, frame in frames.items():
        steps = pd.to_numeric(frame["step"], errors="coerce").dropna() if "step" in frame else pd.Series(dtype=float)
        row = {"run": run, "status": statuses.get(run, ""), "last step": int(steps.max()) if len(steps) else None}
        row.update(
            {
                header(m): rounded(values.at[run, m]) if run in values.index and m in values.columns else math.nan
                for m in metrics
            }
        )
        summary = summaries.get(run) or {}
        row.update({column: rounded(summary.get(key)) for column, key in SNAPSHOT_COLUMNS.items()})
        row["verdict"] = str(summary.get("verdict") or "").replace("_", " ")
        rows.append(row)
    columns = ["run", "status", "last step", *(header(m) for m in metrics), *SNAPSHOT_COLUMNS, "verdict"]
    table = pd.DataFrame(rows, columns=columns)
    table["last step"] = table["last step"].astype("Int64")
    # Drop the snapshot columns no run has (runs without snapshots): an empty column is noise.
    return table.drop(columns=[c for c in SNAPSHOT_COLUMNS if table[c].isna().all()])
