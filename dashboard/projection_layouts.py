"""The Projections page's layouts, all computed by the background worker: PCA is asked for on sight,
t-SNE/UMAP after "Compute"; while one is pending the page says so and fills it in when it lands. Also the
aligned chain through training and two layouts side by side."""

from __future__ import annotations

import numpy as np
import streamlit as st

from runformat.bounds import RunFormatError

from . import data, pending
from .cards import error_card, safe
from .projection_controls import METHODS, ON_SIGHT, TRUE_SCALE, Settings, chain_init, records_ready
from .projection_figures import Colouring, scatter_figure

REQUESTED_KEY = "proj_requested"  # the layouts this session asked for (t-SNE/UMAP wait for a click)
# What reading a layout may raise for one run: refused paths (a symlink out of the root), unreadable files, a
# layout too large for memory (a sparse file); that run's card, never the page.
LOAD_ERRORS = (RunFormatError, ValueError, OSError, KeyError, MemoryError)
PARAM_NAMES = {"perplexity": "perplexity", "n_neighbors": "neighbours", "min_dist": "min. distance"}


def _args(run: str, s: Settings, step: int, init_from_step: int | None) -> tuple:
    return run, int(step), s.method, s.source, s.seed, s.params, init_from_step


def _ask(args: tuple, key: str, what: str) -> None:
    data.request_projection(*args)
    st.session_state.setdefault(REQUESTED_KEY, set()).add(args)
    pending.wait(
        f"{what} is being computed by the background worker.", lambda: data.projection(*args) is not None, key=key
    )


def layout_or_request(
    run: str, s: Settings, step: int | None = None, init_from_step: int | None = None, key: str = "proj_compute"
) -> np.ndarray | None:
    """The layout when the worker has it; else asked for (PCA at once, t-SNE/UMAP after a click) and None."""
    step = s.step if step is None else step
    args = _args(run, s, step, init_from_step)
    what = f"{METHODS[s.method]} of step {step}" + (" (aligned)" if init_from_step is not None else "")
    try:
        xy = data.projection(*args)
        if xy is not None:
            st.caption(status_line(s, step, xy.shape[0]))
            return xy
        if s.method in ON_SIGHT or args in st.session_state.get(REQUESTED_KEY, set()):
            _ask(args, key, what)
        elif st.button(f"Compute {what}", key=key, type="primary"):
            _ask(args, key, what)
        else:
            st.caption(
                f"{METHODS[s.method]} is not cached for these settings. The background worker computes "
                f"it once, on all {data.snapshot(run, step).n:,} points, and stores it beside the run."
            )
    except LOAD_ERRORS as e:
        error_card(run, e)
    return None


def status_line(s: Settings, step: int, n: int) -> str:
    """Where the Compute button was, once the layout is there: what it is and who computed it. Changing a
    parameter is a new request (a button again for t-SNE/UMAP), so this needs no "recompute" of its own."""
    params = ", ".join(f"{PARAM_NAMES.get(k, k)} {v:g}" for k, v in s.params)
    seeded = s.method not in ON_SIGHT  # PCA and true scale are exact: no seed involved
    return (
        f"{METHODS[s.method]} of {n:,} points (step {step}{'; ' + params if params else ''})"
        + (f", seed {s.seed}" if seeded else "")
        + ", computed by the background worker."
    )


def chained_layouts(run: str, s: Settings) -> list[np.ndarray] | None:
    """Aligned layouts of every snapshot step, each started from (t-SNE/UMAP) and rotated onto (all) the one
    before, so a walk through training is one steady frame. The worker computes the whole walk from one
    request for the last step."""
    steps = list(s.steps)
    try:
        chain = [data.projection(*_args(run, s, t, chain_init(steps, t))) for t in steps]
        if all(xy is not None for xy in chain):
            return chain
        last = _args(run, s, steps[-1], chain_init(steps, steps[-1]))
        what = f"aligned {METHODS[s.method]} layouts of the {len(steps)} snapshots"
        if s.method in ON_SIGHT or last in st.session_state.get(REQUESTED_KEY, set()):
            _ask(last, "proj_compute_all", what)
            return None
        st.caption(
            f"The {what} are not all cached: each starts from the previous step's layout so points do "
            "not jump between frames."
        )
        if st.button(f"Compute {METHODS[s.method]} for all {len(steps)} steps", key="proj_compute_all", type="primary"):
            _ask(last, "proj_compute_all", what)
    except LOAD_ERRORS as e:
        error_card(run, e)
    return None


def side_by_side(
    s: Settings,
    xy_a: np.ndarray,
    run_b: str,
    step_b: int,
    xy_b: np.ndarray,
    colour: Colouring,
    hover: tuple,
    matches: np.ndarray | None = None,
    isolate: bool = False,
    selected: np.ndarray | None = None,
) -> None:
    """Two layouts of the same samples, the right one rotated/reflected/scaled onto the left (Procrustes);
    the search and the selection of the Snapshot view marked on both (the same rows)."""
    from diagnostics.measure.projection import align_to, rotate_onto

    if xy_a.shape != xy_b.shape:
        st.warning(
            f"The two snapshots hold different samples ({xy_a.shape[0]:,} vs {xy_b.shape[0]:,} rows); "
            "side by side needs the same evaluation set."
        )
        return
    true_scale = s.method == TRUE_SCALE
    xy_b = rotate_onto(xy_a, xy_b) if true_scale else align_to(xy_a, xy_b)  # true scale: never rescaled
    left, right = st.columns(2)
    marks = dict(matches=matches, isolate=isolate, selected=selected)
    fig_a, _ = scatter_figure(xy_a, colour, hover, f"{s.run} · step {s.step}", height=520, unit=true_scale, **marks)
    fig_b, _ = scatter_figure(
        xy_b, colour, hover, f"{run_b} · step {step_b} (aligned)", height=520, unit=true_scale, **marks
    )
    left.caption(spread_line(s.run, s.step, s.source))
    right.caption(spread_line(run_b, step_b, s.source))
    left.plotly_chart(fig_a, key="proj_side_a", config={"scrollZoom": True})
    right.plotly_chart(fig_b, key="proj_side_b", config={"scrollZoom": True})
    if run_b == s.run:
        found = safe(s.run, data.movement, s.run, min(s.step, step_b), max(s.step, step_b), s.source)
        if found is None and not records_ready(s.run, s.step, step_b):
            pending.wait(
                "Neighbours kept arrive with the two snapshots' records.",
                lambda: records_ready(s.run, s.step, step_b),
                key="side_movement",
            )
        elif found is not None:
            moved, kept = found
            c = st.columns(3)
            c[0].metric("Median moved", f"{np.nanmedian(moved):.3f} rad")
            c[1].metric(f"Neighbours kept (k={data.NEIGHBOURS_K})", f"{np.nanmean(kept):.0%}")
    else:
        shared = safe(s.run, data.shared_neighbours, s.run, run_b, s.step, s.source)
        if shared is None and not (records_ready(s.run, s.step) and records_ready(run_b, s.step)):
            pending.wait(
                "Neighbours shared by the two runs arrive with their records.",
                lambda: records_ready(s.run, s.step) and records_ready(run_b, s.step),
                key="shared",
            )
        elif shared is not None:
            st.metric(
                f"Neighbours shared by the two runs (k={data.NEIGHBOURS_K})",
                f"{np.nanmean(shared):.0%}",
                help="Per sample, the fraction of its nearest neighbours in one run that are also its "
                "nearest neighbours in the other: do the two models organise the data alike?",
            )


def spread_line(run: str, step: int, source: str) -> str:
    """The snapshot's spread under every layout (projection.caption_text): the number that tells a collapsed
    snapshot from a healthy one when PCA, t-SNE and UMAP rescale both into the same tidy cloud."""
    text = data.spread(run, step, source)
    return "spread: not measurable (fewer than 2 finite rows)" if text is None else text
