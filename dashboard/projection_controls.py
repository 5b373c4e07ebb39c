"""The Projections page's settings: every one a widget bound to a URL query parameter (keys `proj_*`), so a
pasted link reopens the same projection."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from . import data, picker
from .cards import safe
from .text import md

Q = dict(bind="query-params", persist_state="session")
# "true scale" (projection.unit_pca): PCA of the unit vectors on fixed axes [-1, 1], without the rescaling
# the others do, so a collapsed snapshot looks collapsed.
METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "unit_pca": "true scale"}
ON_SIGHT = ("pca", "unit_pca")  # cheap (one d×d eigendecomposition): asked for without a click
TRUE_SCALE = "unit_pca"
SOURCES = {"embeddings": "Embeddings", "features": "Features"}  # projection-head output / backbone
VIEWS = ("Snapshot", "Through training", "Side by side")
LABEL, MOVED, KEPT = "label", "moved since previous snapshot", "neighbours kept"


@dataclass(frozen=True)
class Settings:
    run: str
    step: int
    steps: tuple[int, ...]
    method: str
    source: str
    seed: int
    params: tuple[tuple[str, float], ...]
    colour: str
    view: str

    @property
    def previous_step(self) -> int | None:
        i = self.steps.index(self.step)
        return self.steps[i - 1] if i > 0 else None


def chain_init(steps: list[int], step: int) -> int | None:
    """Aligned layouts start from the previous snapshot's layout (t-SNE/UMAP) or are rotated onto it (PCA)."""
    i = steps.index(step)
    return steps[i - 1] if i > 0 else None


def settings_controls(runs: list[str]) -> Settings | None:
    """The page's settings row. None (with a message shown) when there is nothing to project."""
    top = st.columns([3, 7])
    run = top[0].selectbox("Run", runs, key="proj_run", **Q)
    steps = safe(run, data.committed_steps, run)
    if not steps:
        if steps is not None:
            st.info(f"**{md(run)}** has no snapshots yet. The trainer writes them every `snapshot_every` steps.")
        return None
    steps = list(steps)
    if len(steps) > 1:
        step = top[1].select_slider("Snapshot step", steps, value=steps[-1], key="proj_step", **Q)
    else:
        step = steps[0]
        top[1].markdown(f"Snapshot step **{step}** (the only one)")
    snap = safe(run, data.snapshot, run, step)
    if snap is None:
        return None
    mid = st.columns([3, 3, 3, 5])
    method = mid[0].segmented_control(
        "Method",
        list(METHODS),
        format_func=METHODS.get,
        default="pca",
        required=True,
        key="proj_method",
        help="PCA, t-SNE and UMAP rescale, so even a collapsed snapshot shows "
        "tidy clusters. True scale: PCA of the unit vectors on fixed axes "
        "[-1, 1]; points spread over the sphere fill the disc, a collapsed "
        "snapshot is a dot.",
        **Q,
    )
    sources = [k for k in SOURCES if k == "embeddings" or snap.features is not None]
    source = mid[1].segmented_control(
        "Vectors",
        sources,
        format_func=SOURCES.get,
        default="embeddings",
        required=True,
        key="proj_source",
        help="Embeddings: the projection head's output, what the loss sees. "
        "Features: the backbone's output, what downstream tasks use.",
        **Q,
    )
    colours = colour_options(snap, has_previous=steps.index(step) > 0)
    colour = mid[2].selectbox("Colour by", colours, key="proj_colour", **Q)
    view = mid[3].segmented_control("View", VIEWS, default=VIEWS[0], required=True, key="proj_view", **Q)
    row = st.columns([2, 2, 2, 6])
    seed = int(row[0].number_input("Seed", 0, 2**31 - 1, 0, key="proj_seed", **Q))
    params: dict[str, float] = {}
    if method == "tsne":
        params["perplexity"] = float(
            row[1].number_input("Perplexity", 2.0, 500.0, 30.0, 5.0, key="proj_perplexity", **Q)
        )
    elif method == "umap":
        params["n_neighbors"] = int(row[1].number_input("Neighbours", 2, 200, 15, key="proj_neighbors", **Q))
        params["min_dist"] = float(row[2].number_input("Min. distance", 0.0, 1.0, 0.1, 0.05, key="proj_min_dist", **Q))
    return Settings(
        run=run,
        step=int(step),
        steps=tuple(steps),
        method=method or "pca",
        source=source or "embeddings",
        seed=seed,
        params=tuple(sorted(params.items())),
        colour=colour or LABEL,
        view=view or VIEWS[0],
    )


def show_movement(s: Settings, snap) -> bool:
    """Whether to show movement since the previous snapshot: on by default (the colour options "moved"/"kept"
    switch it on). The neighbours kept come from the records at any N for the embeddings; the features'
    neighbours are searched in the page, only up to data.IN_PAGE_POINTS."""
    if s.source != "embeddings" and snap.n > data.IN_PAGE_POINTS:
        st.caption(
            f"Movement of the {md(s.source)} is measured in the page up to {data.IN_PAGE_POINTS:,} "
            f"points; this snapshot has {snap.n:,}. Choose the embeddings to see it (their neighbours "
            "are measured by the background worker)."
        )
        return False
    if s.colour in (MOVED, KEPT):
        return True
    return st.toggle(f"Measure movement since step {s.previous_step}", value=True, key="proj_movement", **Q)


def colour_options(snap, has_previous: bool) -> list[str]:
    options = [LABEL] if snap.labels is not None else []
    options += [str(c) for c in snap.metadata.columns]
    options += [MOVED, KEPT] if has_previous else []
    return options or ["none"]


def records_ready(run: str, *steps: int) -> bool:
    """Whether the worker has written the records of these snapshots (movement and shared neighbours read them)."""
    return all(data.record(run, step) is not None for step in steps)


def comparison_controls(runs: list[str], s: Settings) -> tuple[str, int] | None:
    """(run, step) to put beside the current one: another step of this run, or this step of another run."""
    cols = st.columns([2, 5])
    kind = cols[0].segmented_control(
        "Compare with", ["another step", "another run"], default="another step", required=True, key="proj_compare", **Q
    )
    if kind != "another run":
        if len(s.steps) < 2:
            st.info("This run has a single snapshot; compare it with another run instead.")
            return None
        default = s.steps[0] if s.step != s.steps[0] else s.steps[-1]
        step_b = cols[1].select_slider("Other step", s.steps, value=default, key="proj_step_b", **Q)
        return s.run, int(step_b)
    others = [r for r in (runs if len(runs) > 1 else data.run_names()) if r != s.run]
    if not others:
        st.info("There is no other run under this root.")
        return None
    run_b = cols[1].selectbox("Other run", others, key="proj_run_b", **Q)
    steps_b = list(safe(run_b, data.committed_steps, run_b) or [])
    if not steps_b:
        st.warning(f"**{md(run_b)}** has no snapshot yet.")
        return None
    step_b = picker.nearest_step(steps_b, s.step)
    if step_b != s.step:
        st.caption(f"{md(run_b)} has no snapshot at step {s.step}: showing its nearest, step {step_b}.")
    return run_b, step_b


def replace_run(s: Settings, run: str, step: int) -> Settings:
    steps = s.steps if run == s.run else data.committed_steps(run)
    return Settings(
        run=run,
        step=step,
        steps=steps,
        method=s.method,
        source=s.source,
        seed=s.seed,
        params=s.params,
        colour=s.colour,
        view=s.view,
    )
