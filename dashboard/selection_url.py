"""The points selected on the Projections map, kept in the URL (`proj_sel`) so a reload or a shared link shows
the same selection. Sorted sample indices written as ranges, "0-12,40,77-80": a lasso around a cluster is a
handful of ranges, since samples of one class are often stored together.

A URL value is untrusted: bad syntax, an index beyond the snapshot or an oversized value is ignored with a
note, never an exception, and never expanded before it is checked against the snapshot's N.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import streamlit as st

from .text import md

SELECTION_KEY = "proj_sel"  # the query parameter
STATE_KEY = "proj_selection"  # session: (rows, why the URL's value was ignored or None)
TRACE_ROWS_KEY = "proj_trace_rows"  # session: sample indices of each trace of the map last drawn
CHART_KEY = "proj_chart"
# Links stay pasteable into chats and tickets (many cut or refuse URLs of several kB): 2,000 characters hold
# ~300 scattered indices of a 50k snapshot, or any number of points in ~150 contiguous ranges.
MAX_URL_CHARS = 2_000
MAX_DIGITS = 12  # no snapshot has 10^12 rows; longer numbers are rejected before int()
EMPTY = np.zeros(0, dtype=np.int64)


def encode(rows) -> str:
    """Sorted unique indices as comma-separated ranges: [0, 1, 2, 7, 9, 10] -> "0-2,7,9-10"."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]]
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def _index(token: str) -> int | None:
    return int(token) if 0 < len(token) <= MAX_DIGITS and token.isascii() and token.isdigit() else None


def decode(text, n: int) -> tuple[np.ndarray, str | None]:
    """(sorted rows, None), or (no rows, why `text` was ignored). Never raises; memory is O(n) whatever the
    text says (ranges are marked on an n-long mask, never expanded)."""
    if not isinstance(text, str) or not text:
        return EMPTY, None
    if len(text) > MAX_URL_CHARS:
        return EMPTY, f"it is {len(text):,} characters long (at most {MAX_URL_CHARS:,} are read)"
    mask = np.zeros(n, dtype=bool)
    for token in text.split(","):
        first, dash, last = token.partition("-")
        lo, hi = _index(first), _index(last) if dash else _index(first)
        if lo is None or hi is None:
            return EMPTY, f"“{token[:40]}” is not an index or a range like 3-17"
        if hi < lo:
            return EMPTY, f"the range {lo}-{hi} runs backwards"
        if hi >= n:
            return EMPTY, f"index {hi:,} is beyond this snapshot's {n:,} points (a link to another snapshot?)"
        mask[lo : hi + 1] = True
    return np.flatnonzero(mask).astype(np.int64), None


def selected_rows(event, trace_rows: list[np.ndarray]) -> np.ndarray:
    """Sample indices of the points selected in a chart built by `projection_figures.scatter_figure`."""
    try:
        selection = event["selection"] if isinstance(event, Mapping) else event.selection
        points = selection["points"] if isinstance(selection, Mapping) else selection.points
    except (AttributeError, KeyError, TypeError):
        return EMPTY
    rows = [
        int(trace_rows[p["curve_number"]][p["point_index"]])
        for p in points
        if p.get("curve_number", 0) < len(trace_rows)
        and "point_index" in p
        and p["point_index"] < len(trace_rows[p.get("curve_number", 0)])
    ]
    return np.unique(np.asarray(rows, dtype=np.int64))


def remember(rows: np.ndarray) -> None:
    """The user's selection: kept in the session, and in the URL when it fits (else the URL loses it)."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    st.session_state[STATE_KEY] = (rows, None)
    text = encode(rows)
    if text and len(text) <= MAX_URL_CHARS:
        st.query_params[SELECTION_KEY] = text
    elif SELECTION_KEY in st.query_params:
        del st.query_params[SELECTION_KEY]


def on_select() -> None:
    """plotly_chart's on_select callback: runs only when the user changes the selection on the map."""
    remember(selected_rows(st.session_state.get(CHART_KEY), st.session_state.get(TRACE_ROWS_KEY, [])))


def current(n: int) -> np.ndarray:
    """The selection to show: the session's latest, else the URL's (read once per session). Notes say when
    the URL's value was ignored or when the selection is too large for a link."""
    if STATE_KEY not in st.session_state:
        rows, why = decode(st.query_params.get(SELECTION_KEY, ""), n)
        st.session_state[STATE_KEY] = (rows, why)
        if why is not None and SELECTION_KEY in st.query_params:
            del st.query_params[SELECTION_KEY]  # not carried on into links made from this page
    rows, why = st.session_state[STATE_KEY]
    if why is not None:
        st.info(f"The selection in this link was ignored: {md(why)}.")
    if rows.size and rows[-1] >= n:
        st.info(f"The selection ({rows.size:,} points) does not fit this snapshot of {n:,} points; select again.")
        return EMPTY
    if rows.size and len(encode(rows)) > MAX_URL_CHARS:
        st.caption(
            f"This selection ({rows.size:,} points) is too large to share in a link; it is kept in this session only."
        )
    return rows
