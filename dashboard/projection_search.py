"""Find points on the Projections page by label or metadata value: a plain-text, case-insensitive substring
match over every string form of the label and metadata columns, highlighted on the map (the rest greyed, or
hidden with "isolate"). The search term and the isolate switch are in the URL (`proj_search`, `proj_isolate`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from . import data
from .text import md

Q = dict(bind="query-params", persist_state="session")
MAX_QUERY_CHARS = 200  # a label or a metadata value, not a document; longer URL values are cut here


def haystack(snap) -> pd.DataFrame:
    """The snapshot's label and metadata columns as lower-cased strings: built once per snapshot, so a search
    is then one vectorised `str.contains` per column."""
    cols = {}
    if snap.labels is not None:
        cols["label"] = pd.Series(np.asarray(snap.labels)).astype(str).str.lower()
    for c in snap.metadata.columns:
        cols[f"meta {c}"] = snap.metadata[c].reset_index(drop=True).astype(str).str.lower()
    return pd.DataFrame(cols, index=pd.RangeIndex(snap.n))


def find(hay: pd.DataFrame, query: str) -> np.ndarray:
    """(N,) bool: rows where any column contains the lower-cased `query` as plain text (regex=False: "." and
    "(" match themselves)."""
    found = np.zeros(len(hay), dtype=bool)
    for col in hay.columns:
        found |= hay[col].str.contains(query.lower(), regex=False).to_numpy(dtype=bool)
    return found


@st.cache_resource(max_entries=8, show_spinner=False)
def _haystack(root: str, run: str, step: int) -> pd.DataFrame:  # committed snapshots never change
    return haystack(data.snapshot(run, step))


@st.cache_data(max_entries=64, show_spinner=False)
def _matches(root: str, run: str, step: int, query: str) -> np.ndarray:
    return find(_haystack(root, run, step), query)


def matches(run: str, step: int, query: str) -> np.ndarray:
    """(N,) bool: rows whose label or any metadata value contains `query`, ignoring case."""
    return _matches(data.runs_root(), run, int(step), query.lower())


def search_controls(run: str, step: int, n: int) -> tuple[np.ndarray | None, bool]:
    """The search box and the isolate switch. Returns (the matching rows as an (N,) mask, or None with no
    search; whether to hide the others)."""
    cols = st.columns([4, 3, 5], vertical_alignment="bottom")
    raw = cols[0].text_input(
        "Find points",
        key="proj_search",
        max_chars=MAX_QUERY_CHARS,
        placeholder="label or metadata value",
        help="Plain text, ignoring case: points whose label or any metadata value contains it are highlighted.",
        **Q,
    )
    query = (raw or "")[:MAX_QUERY_CHARS].strip()
    isolate = cols[1].toggle(
        "Isolate matches", key="proj_isolate", disabled=not query, help="Show only the matching points.", **Q
    )
    if not query:
        return None, False
    found = matches(run, step, query)
    count = int(found.sum())
    cols[2].caption(f"**{count:,}** of {n:,} points match “{md(query)}”" + ("" if count else ": nothing to highlight."))
    return found, bool(isolate) and count > 0  # isolating nothing would blank the map
