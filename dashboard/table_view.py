"""The table rule, for every table a page shows: the key columns first and pinned, so they are on screen at
1100 px (run, status, verdict, last step); the rest behind a column picker; human headers; "—" where a
value is missing (not measured yet, or not defined), never "None"; columns with no value in any row left out.

At 1400 px Home scrolled its verdict, description and notes out of sight, Compare's config diff hid a run,
and Geometry's breakdown showed `uniformity_se` None in every row: one rule here, applied to each.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

MISSING = "—"
# Raw field names the pages show, in words (with units where they have them).
HEADERS = {
    "n": "points",
    "share": "share of points",
    "alignment": "alignment",
    "uniformity": "uniformity",
    "uniformity_se": "uniformity ± (std. error)",
    "estimated": "sampled",
    "uniformity_to_all": "uniformity to all points",
    "uniformity_contribution": "share of uniformity",
    "effective_rank": "effective rank",
    "knn_accuracy": "kNN accuracy",
    "last step": "last step",
}


def cell(value, digits: int = 4) -> str:
    """A number to `digits` significant digits, anything else as text; "—" for None, NaN and empty text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    text = str(value)
    return text if text.strip() else MISSING


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` for reading: the columns no row has a value for dropped, the rest under human headers."""
    frame = frame.loc[:, [c for c in frame.columns if frame[c].notna().any()]]
    return frame.rename(columns={c: HEADERS.get(c, c) for c in frame.columns})


def styled(frame: pd.DataFrame, formats: dict[str, str] | None = None):
    """A Styler that shows "—" in every missing cell and `formats` ({column: "{:.3f}"}) for numbers; the
    values stay numbers underneath, so a column still sorts by value."""
    # Streamlit draws a null cell as "None" whatever the Styler says when the whole column is null (Home while
    # every snapshot is being measured): such a column has nothing to sort by, so it holds the text itself.
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        frame = frame.assign(**{c: MISSING for c in empty})
    formats = {c: f for c, f in (formats or {}).items() if c in frame.columns and c not in empty}
    return frame.style.format(formats, na_rep=MISSING).format(
        na_rep=MISSING, subset=[c for c in frame.columns if c not in formats]
    )


def column_picker(options: list[str], key: str, default: list[str], label: str = "More columns", where=st) -> list[str]:
    """The columns beyond the key ones a reader chose to see (bound to the URL and kept for the session)."""
    return where.multiselect(
        label,
        options,
        default=[d for d in default if d in options],
        key=key,
        bind="query-params",
        persist_state="session",
        placeholder="pick columns to show",
    )


def ordered(frame: pd.DataFrame, key_columns: list[str], chosen: list[str]) -> list[str]:
    """The column order: the key columns (those the frame has) then the chosen ones, each once."""
    return list(dict.fromkeys([c for c in key_columns + chosen if c in frame.columns]))


def fit_height(rows: int, row_px: int = 35, most: int = 20) -> int:
    """A table tall enough for `rows` rows (up to `most`), so no run is hidden below a 10-row default."""
    return row_px * (min(rows, most) + 1) + 3
