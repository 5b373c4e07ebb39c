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
HEADERS = {"n": "points", "share": "share of points", "alignment": "alignment", "uniformity": "uniformity",
           "uniformity_se": "uniformity ± (std. error)", "estimated": "sampled",
           "uniformity_to_all": "uniformity to all points", "uniformity_contribution": "share of uniformity",
           "effective_rank": "effective rank", "knn_accuracy": "kNN accuracy", "last step": "last step"}


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


def readable(frame: pd.DataFrame, text_columns=(), digits: int = 4) -> pd.DataFrame:
    """`frame` for reading: columns that no row has a value for dropped, human headers (HEADERS), and in
    `text_columns` (or every column with a missing value, when "all") each cell through `cell`."""
    frame = frame.loc[:, [c for c in frame.columns if frame[c].notna().any()]]
    columns = list(frame.columns) if text_columns == "all" else [c for c in text_columns if c in frame.columns]
    out = frame.copy()
    for c in columns:
        out[c] = [cell(v, digits) for v in frame[c]]
    return out.rename(columns={c: HEADERS.get(c, c) for c in out.columns})


def column_picker(options: list[str], key: str, default: list[str], label: str = "More columns",
                  where=st) -> list[str]:
    """The columns beyond the key ones a reader chose to see (bound to the URL and kept for the session)."""
    return where.multiselect(label, options, default=[d for d in default if d in options], key=key,
                             bind="query-params", persist_state="session",
                             placeholder="pick columns to show")


def ordered(frame: pd.DataFrame, key_columns: list[str], chosen: list[str]) -> list[str]:
    """The column order: the key columns (those the frame has) then the chosen ones, each once."""
    return list(dict.fromkeys([c for c in key_columns + chosen if c in frame.columns]))


def fit_height(rows: int, row_px: int = 35, most: int = 20) -> int:
    """A table tall enough for `rows` rows (up to `most`), so no run is hidden below a 10-row default."""
    return row_px * (min(rows, most) + 1) + 3
