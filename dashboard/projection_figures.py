"""The Projections page's plotly figures: colours, hovers, the WebGL scatter, the play-through, histograms.

Plotly renders a subset of HTML in names, titles and hovers, so every string from the snapshot (labels,
metadata values and column names) and every run name goes through `text.plot` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative  # not plotly.express: importing that costs ~0.3 s

from diagnostics.draw.chart_style import wrap_words

from . import data
from .data import NEIGHBOURS_K
from .projection_controls import KEPT, LABEL, MOVED
from .text import plot

MAX_CATEGORIES = 24  # above this a categorical column is coloured by code on a continuous scale
ANIMATION_POINTS = 1_000_000  # N × steps sent to the browser for the play-through; above it, a subsample
SVG_POINTS = 3_000  # below this the animation uses SVG markers, which can ease between frames
PALETTE = qualitative.D3 + qualitative.Set2 + qualitative.Pastel1
TITLE_CHARS = 36  # a map's title per line: one of two maps side by side at 1100 px (~330 px, 17 px type)
OTHERS_GREY = "#d3d3d3"  # the points a search did not match, drawn under the matches


@dataclass
class Colouring:
    name: str
    values: np.ndarray  # (N,) what colours each point
    categorical: bool
    categories: list | None = None


def colouring(snap, name: str, moved: np.ndarray | None = None, kept: np.ndarray | None = None) -> Colouring:
    if name == LABEL and snap.labels is not None:
        values = np.asarray(snap.labels)
    elif name == MOVED and moved is not None:
        return Colouring(MOVED, moved, False)
    elif name == KEPT and kept is not None:
        return Colouring(f"{KEPT} (of {NEIGHBOURS_K})", kept, False)
    elif name in snap.metadata.columns:
        values = snap.metadata[name].to_numpy()
    else:
        return Colouring("none", np.zeros(snap.n, dtype=np.int64), True, [0])
    uniques = pd.unique(values)
    continuous = values.dtype.kind == "f" or (values.dtype.kind in "iu" and len(uniques) > MAX_CATEGORIES)
    if continuous:
        return Colouring(name, values.astype(np.float64), False)
    if len(uniques) > MAX_CATEGORIES:  # many strings: colour by sorted code on a continuous scale
        categories = sorted(uniques, key=str)
        codes = pd.Categorical(values, categories=categories).codes
        return Colouring(f"{name} (code)", codes.astype(np.float64), False)
    return Colouring(name, values, True, sorted(uniques, key=lambda v: (str(type(v)), v)))


def hover_data(snap, extra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(customdata N×m numbers, text N strings or None, hovertemplate): index, label, metadata, extras."""
    numbers = {"#": np.arange(snap.n)}
    if snap.labels is not None:
        numbers["label"] = np.asarray(snap.labels)
    texts = []
    for col in snap.metadata.columns:
        v = snap.metadata[col].to_numpy()
        if v.dtype.kind in "fiub":
            numbers[str(col)] = v
        else:
            texts.append(str(col))
    numbers.update(extra or {})
    customdata = np.column_stack([np.asarray(v, dtype=np.float64) for v in numbers.values()])
    lines = ["#%{customdata[0]:d}"]
    for j, name in enumerate(list(numbers)[1:], start=1):
        fmt = ":d" if np.asarray(numbers[name]).dtype.kind in "iub" else ":.3g"
        lines.append(f"{_template_literal(plot(name))} %{{customdata[{j}]{fmt}}}")
    text = None
    if texts:
        cols = {c: snap.metadata[c].astype(str).to_numpy() for c in texts}
        text = np.asarray([plot(" · ".join(f"{c} {cols[c][i]}" for c in texts)) for i in range(snap.n)])
        lines.append("%{text}")
    return customdata, text, "<br>".join(lines) + "<extra></extra>"


@st.cache_resource(max_entries=8, show_spinner=False)
def _snapshot_hover(root: str, run: str, step: int, extra_key, _snap, _extra) -> tuple:
    return hover_data(_snap, _extra)  # committed snapshots never change; the extras are keyed by extra_key


def snapshot_hover(run: str, step: int, snap, extra: dict | None = None, extra_key=None) -> tuple:
    """hover_data of a snapshot, built once per (snapshot, extras) and reused by every rerun: at N = 50k it
    cost ~0.17 s each time a widget moved. `extra_key` names what the extras were computed from (the previous
    step and the source of the movement), so a different comparison builds its own."""
    return _snapshot_hover(data.runs_root(), run, int(step), extra_key if extra else None, snap, extra)


def _template_literal(text: str) -> str:
    """A column name inside a hovertemplate: "%{" would start a substitution."""
    return text.replace("%{", "%&#123;")


# -- figures ------------------------------------------------------------------------------------------


def marker_size(n: int) -> float:
    return 7.0 if n <= 2_000 else 4.5 if n <= 20_000 else 3.0 if n <= 60_000 else 2.2


def _groups(c: Colouring, n: int, keep: np.ndarray | None = None) -> list[tuple[str, np.ndarray, dict]]:
    """(trace name, rows, marker) per trace: one trace per category, or one continuous trace. `keep`: only
    these rows (a search's matches); colours stay those of the whole snapshot."""
    rows_all = np.arange(n) if keep is None else keep
    if not c.categorical:
        finite = c.values[np.isfinite(c.values)]
        scale = dict(cmin=float(finite.min()), cmax=float(finite.max())) if finite.size else {}
        return [
            (
                plot(c.name),
                rows_all,
                dict(
                    color=c.values[rows_all],
                    colorscale="Viridis",
                    showscale=True,
                    colorbar=dict(title=dict(text=plot(c.name), side="right"), thickness=12),
                    **scale,
                ),
            )
        ]
    groups = []
    for k, cat in enumerate(c.categories):
        rows = rows_all[c.values[rows_all] == cat]
        if keep is None or rows.size:
            groups.append((plot(cat), rows, dict(color=PALETTE[k % len(PALETTE)])))
    return groups


def scatter_figure(
    xy: np.ndarray,
    c: Colouring,
    hover: tuple,
    title: str = "",
    height: int = 620,
    unit: bool = False,
    matches: np.ndarray | None = None,
    isolate: bool = False,
    selected: np.ndarray | None = None,
) -> tuple[go.Figure, list[np.ndarray]]:
    """WebGL scatter of all N points; returns the figure and each trace's sample indices. `title` is
    plain text (escaped here). unit: the true-scale view, on fixed axes [-1, 1] with the unit circle drawn.
    matches: an (N,) mask from a search; the other points are drawn grey underneath, or left out (isolate).
    selected: sample indices drawn as plotly's selection (a selection restored from the URL)."""
    n = xy.shape[0]
    customdata, text, template = hover
    groups = _groups(c, n, None if matches is None else np.flatnonzero(matches))
    if matches is not None and not isolate:
        groups.insert(0, ("not matching", np.flatnonzero(~matches), dict(color=OTHERS_GREY)))
    fig, trace_rows = go.Figure(), []
    for name, rows, marker in groups:
        fig.add_trace(
            go.Scattergl(
                x=xy[rows, 0],
                y=xy[rows, 1],
                mode="markers",
                name=name,
                customdata=customdata[rows],
                text=None if text is None else text[rows],
                hovertemplate=template,
                selectedpoints=None
                if selected is None or not len(selected)
                else np.flatnonzero(np.isin(rows, selected)),
                marker=dict(size=marker_size(n), opacity=0.8, line=dict(width=0), **marker),
            )
        )
        trace_rows.append(rows)
    _style(fig, plot(title), height, c)
    if isolate and matches is not None:  # the whole snapshot's frame: where the matches sit among the rest
        fig.update_layout(**_frame(xy))
    if unit:
        unit_axes(fig)
    return fig, trace_rows


def _frame(xy: np.ndarray) -> dict:
    """Fixed x and y ranges around every finite point of `xy` (4 % padding)."""
    finite = xy[np.isfinite(xy).all(axis=1)]
    if not len(finite):
        return {}
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    pad = 0.04 * (hi - lo + 1e-9)
    return dict(
        xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]], autorange=False),
        yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]], autorange=False),
    )


def unit_axes(fig: go.Figure) -> None:
    """Fixed axes [-1, 1] and the unit circle: every true-scale point lies in the disc (its coordinates are
    cosines with two axes), so a spread snapshot fills it and a collapsed one is a dot."""
    fig.add_shape(type="circle", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="#999", width=1, dash="dot"), layer="below")
    box = dict(range=[-1.05, 1.05], autorange=False, showticklabels=True, zeroline=True, zerolinecolor="#ddd")
    fig.update_layout(xaxis=box, yaxis=box, meta={})  # true scale: cosines, with ticks


def _style(fig: go.Figure, title: str, height: int, c: Colouring) -> None:
    lines = wrap_words(title, TITLE_CHARS, " · ") if title else []  # "PCA of … · a 60-character run · step …"
    title = "<br>".join(lines)
    fig.update_layout(
        title=dict(text=title, x=0.01),
        height=height,
        dragmode="lasso",
        meta={"axes": "arbitrary"},  # PCA/t-SNE/UMAP coordinates: no ticks (the chart rule knows)
        margin=dict(l=10, r=10, t=20 + 20 * len(lines) if title else 10, b=10),
        uirevision="keep",
        legend=dict(title=dict(text=plot(c.name)), itemsizing="constant"),
        showlegend=c.categorical and c.name != "none",  # also for one category (isolated)
        xaxis=dict(showticklabels=False, title=None, zeroline=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, scaleanchor="x"),
    )


def animated_figure(
    layouts: list[np.ndarray],
    steps: list[int],
    c: Colouring,
    hover: tuple,
    start: int,
    seed: int = 0,
    height: int = 640,
    unit: bool = False,
    matches: np.ndarray | None = None,
    isolate: bool = False,
    selected: np.ndarray | None = None,
) -> tuple[go.Figure, int]:
    """Plotly frames of the aligned layouts with Play/Pause and a step slider, all in the browser.

    Returns the figure and how many points it shows (a seeded subsample when N × steps is too large
    to ship to the browser; the static views always show every point). matches, isolate, selected: the
    search and the selection of the Snapshot view (scatter_figure), drawn the same way in every frame."""
    n = layouts[0].shape[0]
    pool = np.flatnonzero(matches) if matches is not None and isolate else np.arange(n)
    keep = pool
    if len(pool) * len(steps) > ANIMATION_POINTS:
        m = max(1000, ANIMATION_POINTS // len(steps))
        keep = np.sort(np.random.default_rng(seed).choice(pool, size=min(m, len(pool)), replace=False))
    sub = Colouring(c.name, c.values[keep], c.categorical, c.categories)
    customdata, text, template = hover
    hover = (customdata[keep], None if text is None else text[keep], template)
    Trace = go.Scatter if len(keep) <= SVG_POINTS else go.Scattergl
    hit = None if matches is None else np.asarray(matches)[keep]
    groups = _groups(sub, len(keep), None if hit is None else np.flatnonzero(hit))
    if hit is not None and not isolate:
        groups.insert(0, ("not matching", np.flatnonzero(~hit), dict(color=OTHERS_GREY)))

    def traces(xy: np.ndarray, full: bool) -> list:
        out = []
        for name, rows, marker in groups:
            chosen = None if selected is None or not len(selected) else np.flatnonzero(np.isin(keep[rows], selected))
            extra = dict(
                mode="markers",
                name=name,
                customdata=hover[0][rows],
                hovertemplate=template,
                text=None if hover[1] is None else hover[1][rows],
                selectedpoints=chosen,
                marker=dict(size=marker_size(len(keep)), opacity=0.8, line=dict(width=0), **marker),
            )
            out.append(Trace(x=xy[keep][rows, 0], y=xy[keep][rows, 1], **(extra if full else {})))
        return out

    smooth = Trace is go.Scatter
    fig = go.Figure(
        data=traces(layouts[start], True),
        frames=[go.Frame(name=str(t), data=traces(layout, False)) for t, layout in zip(steps, layouts)],
    )
    play = dict(
        frame=dict(duration=700, redraw=not smooth),
        transition=dict(duration=450 if smooth else 0, easing="cubic-in-out"),
        fromcurrent=False,
        mode="immediate",
    )  # a walk from the first step
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=not smooth), transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=-0.02,
                xanchor="left",
                yanchor="top",
                pad=dict(t=0, r=10),
                showactive=False,
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, play]),
                    dict(
                        label="❚❚ Pause",
                        method="animate",
                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                active=start,
                x=0.2,
                len=0.8,
                y=-0.02,
                yanchor="top",
                pad=dict(t=0),
                currentvalue=dict(prefix="step ", visible=True),
                steps=[dict(label=str(t), method="animate", args=[[str(t)], jump]) for t in steps],
            )
        ],
    )
    _style(fig, "", height, c)
    fig.update_layout(
        dragmode="pan",
        margin=dict(l=10, r=10, t=10, b=80),
        **_frame(np.concatenate([layout[keep] for layout in layouts])),
    )
    if unit:
        unit_axes(fig)
    return fig, len(keep)


def histogram_figure(values: np.ndarray, title: str, bins: int = 40) -> go.Figure:
    fig = go.Figure(go.Histogram(x=values[np.isfinite(values)], nbinsx=bins, marker_color="#4c78a8"))
    fig.update_layout(
        height=220,
        margin=dict(l=10, r=10, t=30, b=10),
        title=dict(text=plot(title), x=0.01, font=dict(size=13)),
        bargap=0.05,
        yaxis=dict(title="points"),
    )
    return fig
