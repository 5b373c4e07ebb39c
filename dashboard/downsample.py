"""The rows of a metrics frame worth drawing: for each of `buckets` equal runs of rows, the rows holding each
metric's smallest and largest finite value (and the first and last row). Every spike and every dip a full-
resolution line would show survives, the drawn points stay ~2 x metrics x buckets whatever the run's length,
and a row kept is a whole row, so ratios between a row's metrics (Live's loss ratio) stay exact.

Why: Live drew every logged line; at 1,000,000 lines the browser took 17-29 s per refresh and the server held
2.3 GB for the figure (issue 24 item 17).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A Live panel is at most ~600 px wide (step_grid's two columns in a wide page): a min and a max per pixel
# column draw the same line as every point does.
BUCKETS = 600


def rows_to_draw(frame: pd.DataFrame, buckets: int = BUCKETS) -> pd.DataFrame:
    """`frame` itself when it has at most 4 rows a bucket; else its min/max rows per bucket, in order."""
    n = len(frame)
    if n <= 4 * buckets:
        return frame
    size = -(-n // buckets)  # rows per bucket; the last one may be short
    keep = np.zeros(buckets * size, bool)
    keep[[0, n - 1]] = True
    base = np.arange(buckets) * size  # first row of each bucket
    for column in frame.columns:
        if column == "step" or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        v = np.full(buckets * size, np.nan)
        v[:n] = frame[column].to_numpy(dtype=float, na_value=np.nan)
        v = v.reshape(buckets, size)  # v: buckets x size
        finite = np.isfinite(v)
        has = finite.any(axis=1)
        low = np.where(finite, v, np.inf).argmin(axis=1)
        high = np.where(finite, v, -np.inf).argmax(axis=1)
        keep[(base + low)[has]] = True
        keep[(base + high)[has]] = True
    return frame.iloc[np.flatnonzero(keep[:n])]
