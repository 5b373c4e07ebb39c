"""Which runs a page shows: the sidebar picker (bound to the URL, so a pasted link reopens the same view and
the selection follows the user from page to page) and the fallback when nothing is picked."""

from __future__ import annotations

import streamlit as st

from diagnostics import RunFormatError
from diagnostics.draw import chart_style

from . import data
from .text import md

# Pages without a selection show every run under the root, up to this many.
FALLBACK_RUNS = 6
RUNS_KEY = "runs"


def sidebar_run_picker() -> list[str]:
    names = data.run_names()
    chart_style.use_run_names(names)  # colours resolved over the whole root: stable under any selection
    with st.sidebar:
        st.caption(f"Runs root: {md(data.runs_root())}")
        st.multiselect(
            "Runs",
            names,
            key=RUNS_KEY,
            bind="query-params",
            persist_state="session",
            placeholder="Pick runs on Home or here",
        )
        chip_colours(selected_runs())
    return selected_runs()


def chip_colours(chosen: list[str]) -> None:
    """Each chip of the sidebar's run picker in its run's chart colour (the theme drew them all red). A chip
    is a `[data-tag]` whose aria-label is the run's name; the name goes into the selector as a CSS string
    with every character but [A-Za-z0-9_.-] escaped (a name cannot close the string or the style)."""
    if not chosen:
        return
    colours = chart_style.run_colours(chosen)
    rules = "".join(
        f'.st-key-{RUNS_KEY} [data-tag][aria-label="{css_string(name)}"]{{background-color:{colours[name]} !important}}'
        for name in chosen
    )
    st.html(f"<style>{rules}</style>")


def css_string(text: str) -> str:
    """`text` inside a double-quoted CSS string: anything but letters, digits, "_", "." and "-" as a
    hex escape ("\\3c " for "<")."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else f"\\{ord(c):x} " for c in text)


def selected_runs() -> list[str]:
    return list(st.session_state.get(RUNS_KEY) or [])


def active_runs() -> list[str]:
    """The selected runs; with none selected, the first runs under the root, running ones first (and a
    caption saying so)."""
    chosen = selected_runs()
    if chosen:
        return chosen
    names = sorted(data.run_names(), key=lambda name: not _is_live(name))[:FALLBACK_RUNS]  # running first
    if names:
        st.caption(f"No runs selected: showing {', '.join(md(n) for n in names)}. Pick runs on Home or in the sidebar.")
    return names


def _is_live(name: str) -> bool:
    try:
        return data.run(name).status in ("running", "stalled")
    except (RunFormatError, OSError):
        return False


def rerun_when_runs_change(shown: list[str]) -> None:
    """Called from a self-refreshing fragment: when runs appeared or vanished under the root since the page
    drew `shown` (the run list its sidebar and fallback were built from), rerun the whole page so the
    picker and the page pick them up without a reload."""
    if data.run_names() != shown:
        st.rerun(scope="app")


def runs_with_snapshots(names: list[str], needs: str) -> dict:
    """{run: its per-snapshot table} for the runs with measured snapshots (error cards for the broken ones),
    and a self-refreshing progress line while the worker measures the rest. A page with none of them says
    what it `needs` (or that they are being measured) and stops."""
    from .cards import safe
    from .pending import wait_for_records

    tables, pending = {}, {}
    for name in names:
        found = safe(name, data.run_table, name)
        if found is None:
            continue
        table, waiting = found
        if len(table):
            tables[name] = table
        if waiting:
            pending[name] = waiting
    wait_for_records(pending)
    if not tables:
        if not pending:
            st.info(f"None of these runs has a snapshot yet: {needs}")
        st.stop()
    return tables


def nearest_step(steps: list[int], step: int) -> int:
    """The snapshot step closest to `step` (the earlier one on a tie): runs snapshotting at different
    intervals still compare side by side."""
    return int(min(steps, key=lambda s: (abs(int(s) - step), int(s))))


# How often a page with nothing to show looks for the first run.
WAIT_FOR_RUNS_S = 2


def wait_for_first_run() -> None:
    """On an empty root: the hint, and a fragment that reruns the page as soon as a run appears."""
    from .cards import make_a_run

    st.info(f"No runs under {md(data.runs_root())}.", icon=":material/folder_off:")
    make_a_run(data.runs_root())

    @st.fragment(run_every=WAIT_FOR_RUNS_S)
    def _look() -> None:
        rerun_when_runs_change([])

    _look()
    st.stop()
