"""Figures for paired snapshots and conditional generators (pure: arrays in, plotly figures out).

joint_projection         one 2-D layout of both modalities' unit rows, so the modality gap is visible
joint_projection_figure  that layout coloured by modality; the matched pairs of `selected` rows linked
sample_grid_figure       a generated-sample grid (rows × columns × H × W uint8, as `Run.generated_samples`)

Every string that came from a run (modality names, hover text, titles) is html-escaped: plotly.js parses a
little HTML in names, titles and hovers.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ..measure.projection import project
from . import figures

MODALITY_COLORS = ("#1f77b4", "#ff7f0e")  # embeddings' modality, paired modality


def _text(value) -> str:
    return html.escape(str(value), quote=False)


def joint_projection(z_a, z_b, method: str = "pca", seed: int | None = 0, **params) -> tuple[np.ndarray, np.ndarray]:
    """(N×2, N×2): both modalities projected together (2N rows), so distances between modalities mean
    something; a PCA of the stacked unit rows puts the gap direction on the first axis when the gap dominates.
    t-SNE/UMAP (method=) are slow at large N: call this from a worker, not a page."""
    a, b = np.asarray(z_a), np.asarray(z_b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"z_b: shape {b.shape} differs from z_a {a.shape} (need two N×d arrays)")
    xy = project(np.concatenate([a, b]), method=method, seed=seed, **params)
    return xy[: len(a)], xy[len(a) :]


def joint_projection_figure(
    xy_a,
    xy_b,
    modality_names: Sequence[str] = ("embeddings", "paired"),
    hover_a: Sequence[str] | None = None,
    hover_b: Sequence[str] | None = None,
    selected: Sequence[int] | None = None,
    title: str = "Both modalities, one layout",
) -> go.Figure:
    """Scatter of both layouts coloured by modality; for each row index in `selected`, a segment from its
    point in one modality to its partner in the other (the dashboard passes the rows the user selected)."""
    xy_a, xy_b = np.asarray(xy_a, dtype=np.float64), np.asarray(xy_b, dtype=np.float64)
    if xy_a.shape != xy_b.shape or xy_a.ndim != 2 or xy_a.shape[1] != 2:
        raise ValueError(f"xy_b: needs two N×2 layouts of the same N, got {xy_a.shape} and {xy_b.shape}")
    n = len(xy_a)
    rows = [int(i) for i in (selected or []) if 0 <= int(i) < n]
    # the selected rows drawn in full, the rest faded: plotly's own selection look, kept across a redraw
    highlight = (
        dict(selectedpoints=rows, selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.12)))
        if rows
        else {}
    )
    fig = go.Figure()
    for xy, name, hover, color in (
        (xy_a, modality_names[0], hover_a, MODALITY_COLORS[0]),
        (xy_b, modality_names[1], hover_b, MODALITY_COLORS[1]),
    ):
        text = [_text(h) for h in hover] if hover is not None else [str(i) for i in range(n)]
        fig.add_trace(
            go.Scattergl(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                name=_text(name),
                text=text,
                customdata=np.arange(n),
                marker=dict(size=5, color=color, opacity=0.7),
                hovertemplate="%{text}<br>row %{customdata}<extra>" + _text(name) + "</extra>",
                **highlight,
            )
        )
    if rows:
        xs = np.full(3 * len(rows), np.nan)
        ys = np.full(3 * len(rows), np.nan)
        xs[0::3], xs[1::3] = xy_a[rows, 0], xy_b[rows, 0]  # a NaN breaks the line between pairs
        ys[0::3], ys[1::3] = xy_a[rows, 1], xy_b[rows, 1]
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", name="matched pairs", hoverinfo="skip", line=dict(color="#444", width=1)
            )
        )
    fig.update_layout(
        template=figures.TEMPLATE,
        title=_text(title),
        height=520,
        xaxis_title="",
        yaxis_title="",
        legend=dict(orientation="h", y=-0.08),
        margin=dict(l=30, r=20, t=50, b=40),
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def sample_grid_figure(
    grid,
    title: str = "Generated samples",
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    gap: int = 1,
    scale: int = 5,
) -> go.Figure:
    """A rows × cols × H × W uint8 grid drawn as one grey image, `gap` pixels between cells; tick labels at
    the cell centres (default: the row and column numbers)."""
    g = np.asarray(grid)
    if g.ndim != 4 or g.dtype != np.uint8:
        raise ValueError(f"grid: needs a uint8 rows×cols×H×W array, got {g.dtype} {g.shape}")
    rows, cols, h, w = g.shape
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(cols):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = g[r, c]
    fig = go.Figure(go.Heatmap(z=canvas, colorscale="gray_r", zmin=0, zmax=255, showscale=False, hoverinfo="skip"))
    # Column labels under the grid, slanted when they are words: above it they ran into the title.
    texts = [_text(t) for t in (col_labels or range(cols))]
    slanted = max((len(t) for t in texts), default=0) * 6 > scale * (w + gap)  # ~6 px a character at 12 px
    fig.update_xaxes(
        tickvals=[c * (w + gap) + (w - 1) / 2 for c in range(cols)],
        side="bottom",
        ticktext=texts,
        tickangle=-45 if slanted else 0,
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        tickvals=[r * (h + gap) + (h - 1) / 2 for r in range(rows)],
        autorange="reversed",
        ticktext=[_text(t) for t in (row_labels or range(rows))],
        showgrid=False,
        zeroline=False,
    )
    # a fixed size of `scale` screen pixels per image pixel keeps the cells square at any container width
    fig.update_layout(
        template=figures.TEMPLATE,
        title=_text(title),
        autosize=False,
        width=60 + scale * canvas.shape[1],
        height=(150 if slanted else 110) + scale * canvas.shape[0],
        margin=dict(l=40, r=20, t=50, b=100 if slanted else 40),
    )
    return fig
