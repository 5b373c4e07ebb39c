"""Home's refresh, at no cost while nothing changed: a tiny self-refreshing fragment compares what Home's table
is drawn from (the root's run folders, each run's files by identity, the worker's line) with what the page
last drew, and reruns the page only when it differs. An idle Home tab cost 35-40 % of a core when the whole
table was rebuilt, re-sent and re-drawn every 5 s (issue 24 item 17; bench/bench_idle_home.py measures it).

A running or stalled run changes Home every refresh anyway (its heartbeat age, and the moment it turns
stalled is a matter of the clock, not of a file), so while one is shown the page reruns on every tick.
"""

from __future__ import annotations

import os
import time

import streamlit as st

from diagnostics import list_runs
from runformat import layout

from . import data, pending

DRAWN_KEY = "home_drawn"  # the fingerprint of what the page last drew
LIVE_KEY = "home_live"  # when the last drawn table with a running or stalled run was drawn (else None)
# What Home's row reads of a run (overview.overview_row): its status and description, metrics' last step,
# notes, config (the config columns), the snapshot listing and the worker's records and run state.
FILES = (
    layout.RUN_FILE,
    layout.METRICS_FILE,
    layout.CONFIG_FILE,
    layout.NOTES_FILE,
    layout.SNAPSHOT_DIR,
    os.path.join(layout.CACHE_DIR, layout.RUN_STATE_FILE),
    os.path.join(layout.CACHE_DIR, layout.RECORDS_DIR),
)


def _identity(run, name: str):
    try:
        return run.storage.identity(run.file(name))
    except Exception:  # noqa: BLE001 - missing, refused or unreadable: that is the state to compare
        return None


def fingerprint() -> tuple:
    """Everything Home's table shows, as file identities (path, size, mtime) and the worker's line. Runs come
    straight from list_runs (a Run is a name and a root; data.run's shared handle costs ~1 ms a lookup)."""
    runs = tuple((run.name, tuple(_identity(run, f) for f in FILES)) for run in list_runs(data.runs_root()))
    state = pending.worker_state()
    worker = (
        pending.progress_line(state)[0],
        state.get("last_error_at"),
        (state.get("supervisor") or {}).get("starts"),
        (state.get("supervisor") or {}).get("last_error_at"),
    )
    return runs, worker, tuple(data.unreadable_runs())


def drawn(before: tuple, live: bool) -> None:
    """Called by the page after it drew the table from what `fingerprint()` gave before it began (a change
    while it drew is then seen on the next tick)."""
    st.session_state[DRAWN_KEY] = before
    st.session_state[LIVE_KEY] = time.monotonic() if live else None  # when a live table was drawn


def watch(every_s: float) -> None:
    """A fragment that reruns the page when the fingerprint moved (or a live run is shown), else nothing."""

    @st.fragment(run_every=every_s)
    def _tick() -> None:  # also runs inline right after the table: a live table is then fresh, not due
        live_since = st.session_state.get(LIVE_KEY)
        due = live_since is not None and time.monotonic() - live_since >= every_s / 2
        if due or st.session_state.get(DRAWN_KEY) != fingerprint():
            st.rerun(scope="app")

    _tick()
