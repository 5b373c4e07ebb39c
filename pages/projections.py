"""Projections: PCA / t-SNE / UMAP / true scale of a snapshot, selectable, aligned through training, side by side."""

import numpy as np
import streamlit as st

from dashboard import cards, data, pending, picker, selection_url
from dashboard import projection_controls as controls
from dashboard import projection_figures as pf
from dashboard import projection_layouts as layouts
from dashboard.projection_search import search_controls
from dashboard.selection_panel import selection_panel

st.title("Projections")
runs = picker.selected_runs() or data.run_names()
if not runs:
    picker.wait_for_first_run()

s = controls.settings_controls(runs)
if s is None:
    st.stop()
snap = data.snapshot(s.run, s.step)
moved = kept = None
if s.previous_step is not None and controls.show_movement(s, snap):
    found = cards.safe(s.run, data.movement, s.run, s.previous_step, s.step, s.source)
    if found is None and not controls.records_ready(s.run, s.previous_step, s.step):
        pending.wait(
            f"Movement since step {s.previous_step} arrives with the two snapshots' records.",
            lambda: controls.records_ready(s.run, s.previous_step, s.step),
            key="movement",
        )
    moved, kept = found or (None, None)
colour = pf.colouring(snap, s.colour, moved, kept)
hover = pf.snapshot_hover(
    s.run,
    s.step,
    snap,
    {"moved (rad)": moved, "kept": kept} if moved is not None else None,
    (s.previous_step, s.source),
)
name = f"{controls.METHODS[s.method]} of {controls.SOURCES[s.source].lower()}"
true_scale = s.method == controls.TRUE_SCALE

found, isolate = search_controls(s.run, s.step, snap.n)  # every view: the same rows, marked the same way
chosen = selection_url.current(snap.n)
if s.view == "Snapshot":
    xy = layouts.layout_or_request(s.run, s)
    if xy is not None:
        fig, trace_rows = pf.scatter_figure(
            xy,
            colour,
            hover,
            f"{name} · {s.run} · step {s.step} · {snap.n:,} points",
            unit=true_scale,
            matches=found,
            isolate=isolate,
            selected=chosen,
        )
        st.session_state[selection_url.TRACE_ROWS_KEY] = trace_rows  # what the next selection event indexes
        st.plotly_chart(
            fig,
            key=selection_url.CHART_KEY,
            on_select=selection_url.on_select,
            selection_mode=("points", "box", "lasso"),
            config={"scrollZoom": True},
        )
        st.caption(layouts.spread_line(s.run, s.step, s.source))
        selection_panel(s, snap, chosen)

elif s.view == "Through training":
    chain = layouts.chained_layouts(s.run, s)
    if chain is not None:
        fig, shown = pf.animated_figure(
            chain,
            list(s.steps),
            colour,
            hover,
            s.steps.index(s.step),
            s.seed,
            unit=true_scale,
            matches=found,
            isolate=isolate,
            selected=chosen,
        )
        st.plotly_chart(fig, key="proj_animation", config={"scrollZoom": True})
        st.caption(
            f"{len(s.steps)} aligned frames of {shown:,} points"
            + (f" (a seeded sample of {snap.n:,}; the Snapshot view shows all)" if shown < snap.n else "")
            + ". Colours are those of the step chosen above.  \n"
            + layouts.spread_line(s.run, s.step, s.source)
            + f" (step {s.step})"
        )

else:
    other = controls.comparison_controls(runs, s)
    xy = layouts.layout_or_request(s.run, s) if other is not None else None
    if xy is not None:
        b_run, b_step = other
        xy_b = layouts.layout_or_request(b_run, controls.replace_run(s, b_run, b_step), b_step, key="proj_compute_b")
        if xy_b is not None:
            layouts.side_by_side(s, xy, b_run, b_step, xy_b, colour, hover, found, isolate, chosen)

if s.view != "Snapshot" and len(chosen):  # a selection from the URL: its rows listed under any view
    selection_panel(s, snap, chosen)

if moved is not None:
    st.subheader(f"Movement since step {s.previous_step}")
    cols = st.columns([2, 2, 1, 4, 4])
    cols[0].metric(
        "Median moved",
        f"{np.nanmedian(moved):.2f} rad",
        help="Great-circle distance on the unit sphere each point moved between the two snapshots.",
    )
    cols[1].metric(
        "Neighbours kept",
        f"{np.nanmean(kept):.0%}",
        help=f"Mean fraction of each point's {data.NEIGHBOURS_K} nearest neighbours still among them.",
    )
    cols[2].metric("Points", f"{snap.n:,}")
    cols[3].plotly_chart(pf.histogram_figure(moved, "moved (radians)"), key="proj_hist_moved")
    cols[4].plotly_chart(
        pf.histogram_figure(kept, f"fraction of {data.NEIGHBOURS_K} neighbours kept"), key="proj_hist_kept"
    )
