"""The dashboard's shared state: which runs root, which runs are selected, cached loaders, error cards.

Selection and page settings are widgets bound to URL query parameters (`bind="query-params"`), so a link
pasted into a meeting chat reopens the same view, and the selection follows the user from page to page.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from diagnostics import RunFormatError, list_runs, open_run
from diagnostics.runs import Run

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "sample_runs"
RUNS_ENV = "CONTRASTSCOPE_RUNS"


def runs_root() -> str:
    """`-- --runs DIR` on the streamlit command line, else $CONTRASTSCOPE_RUNS, else the shipped sample_runs/."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.runs or os.environ.get(RUNS_ENV) or str(DEFAULT_ROOT)


def start_background_work() -> None:
    """Warm UMAP's numba JIT once per server process so nobody waits for it on the Projections page."""
    try:
        from diagnostics import warmup
    except ImportError:
        return
    warmup.start_umap_warmup()


def run_names() -> list[str]:
    return [r.name for r in list_runs(runs_root())]


def get_run(name: str) -> Run:
    return open_run(name, root=runs_root())


def sidebar_run_picker() -> list[str]:
    names = run_names()
    with st.sidebar:
        st.caption(f"Runs root: `{runs_root()}`")
        st.multiselect("Runs", names, key="runs", bind="query-params", persist_state="session",
                       placeholder="Pick runs on Home or here")
    return selected_runs()


def selected_runs() -> list[str]:
    return list(st.session_state.get("runs") or [])


def error_card(run_name: str, error: Exception) -> None:
    """A run that fails to load gets a card naming the file and the problem; never a traceback."""
    st.error(f"**{run_name}** could not be loaded: {error}", icon="⚠️")


def safe(run_name: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (RunFormatError, OSError, ValueError, KeyError) as e:
        error_card(run_name, e)
        return None
