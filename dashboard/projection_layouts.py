"""The Projections page's layouts: PCA on sight, t-SNE/UMAP after "Compute" and from the run's cache
afterwards; the aligned chain through training; two layouts side by side."""
from __future__ import annotations

import numpy as np
import streamlit as st

from . import data
from .cards import error_card
from .projection_controls import METHODS, Settings, chain_init
from .projection_figures import Colouring, scatter_figure


def umap_warming() -> str | None:
    """The warm-up's status line while UMAP's numba code is still compiling, else None."""
    try:
        from diagnostics import warmup
    except ImportError:
        return None
    return None if warmup.umap_warm() else warmup.umap_warmup_status()


def _layout(run: str, s: Settings, step: int, init_from_step: int | None, progress=None) -> np.ndarray:
    return data.projection(run, step, s.method, s.source, s.seed, s.params, init_from_step, progress)


def _cached(run: str, s: Settings, step: int, init_from_step: int | None) -> bool:
    return data.projection_cached(run, step, s.method, s.source, s.seed, s.params, init_from_step)


def _bar_progress(bar):
    return lambda f, msg: bar.progress(float(min(max(f, 0.0), 1.0)), text=msg)


def layout_or_compute(run: str, s: Settings, step: int | None = None, init_from_step: int | None = None,
                      key: str = "proj_compute") -> np.ndarray | None:
    """The layout when PCA or already cached; otherwise a Compute button (and None until it is pressed)."""
    step = s.step if step is None else step
    try:
        if s.method == "pca" or _cached(run, s, step, init_from_step):
            return _layout(run, s, step, init_from_step)
        if s.method == "umap" and (warming := umap_warming()):
            st.info(f"{warming}. A UMAP started now compiles first.", icon="⏳")
        label = f"Compute {METHODS[s.method]} of step {step}" + (" (aligned)" if init_from_step is not None else "")
        if not st.button(label, key=key, type="primary"):
            st.caption(f"{METHODS[s.method]} is not cached for these settings. It is computed once, on all "
                       f"{data.snapshot(run, step).n:,} points, and stored beside the run.")
            return None
        bar = st.progress(0.0, text=f"{METHODS[s.method]}: starting")
        layout = _layout(run, s, step, init_from_step, progress=_bar_progress(bar))
        bar.empty()
        return layout
    except (ValueError, OSError, KeyError) as e:
        error_card(run, e)
        return None


def chained_layouts(run: str, s: Settings) -> list[np.ndarray] | None:
    """Aligned layouts of every snapshot step, each started from (t-SNE/UMAP) and rotated onto (all) the
    one before, so a walk through training is one steady frame; computed on request for t-SNE/UMAP."""
    steps = list(s.steps)
    last = (steps[-1], chain_init(steps, steps[-1]))
    try:
        if s.method != "pca" and not _cached(run, s, *last):
            if s.method == "umap" and (warming := umap_warming()):
                st.info(f"{warming}. A UMAP started now compiles first.", icon="⏳")
            st.caption(f"Aligned {METHODS[s.method]} layouts of the {len(steps)} snapshots are not all cached: "
                       "each starts from the previous step's layout so points do not jump between frames.")
            if not st.button(f"Compute {METHODS[s.method]} for all {len(steps)} steps", key="proj_compute_all",
                             type="primary"):
                return None
            bar = st.progress(0.0, text="starting")
            _layout(run, s, *last, progress=_bar_progress(bar))
            bar.empty()
        return [_layout(run, s, t, chain_init(steps, t)) for t in steps]
    except (ValueError, OSError, KeyError) as e:
        error_card(run, e)
        return None


def side_by_side(s: Settings, xy_a: np.ndarray, run_b: str, step_b: int, xy_b: np.ndarray,
                 colour: Colouring, hover: tuple) -> None:
    """Two layouts of the same samples, the right one rotated/reflected/scaled onto the left (Procrustes)."""
    from diagnostics.projection import align_to
    if xy_a.shape != xy_b.shape:
        st.warning(f"The two snapshots hold different samples ({xy_a.shape[0]:,} vs {xy_b.shape[0]:,} rows); "
                   "side by side needs the same evaluation set.")
        return
    xy_b = align_to(xy_a, xy_b)
    left, right = st.columns(2)
    fig_a, _ = scatter_figure(xy_a, colour, hover, f"{s.run} · step {s.step}", height=520)
    fig_b, _ = scatter_figure(xy_b, colour, hover, f"{run_b} · step {step_b} (aligned)", height=520)
    left.plotly_chart(fig_a, key="proj_side_a", config={"scrollZoom": True})
    right.plotly_chart(fig_b, key="proj_side_b", config={"scrollZoom": True})
    if run_b == s.run:
        moved, kept = data.movement(s.run, min(s.step, step_b), max(s.step, step_b), s.source)
        c = st.columns(3)
        c[0].metric("Median moved", f"{np.nanmedian(moved):.3f} rad")
        c[1].metric(f"Neighbours kept (k={data.NEIGHBOURS_K})", f"{np.nanmean(kept):.0%}")
    else:
        shared = data.shared_neighbours(s.run, run_b, s.step, s.source)
        st.metric(f"Neighbours shared by the two runs (k={data.NEIGHBOURS_K})", f"{np.nanmean(shared):.0%}",
                  help="Per sample, the fraction of its nearest neighbours in one run that are also its "
                       "nearest neighbours in the other: do the two models organise the data alike?")
