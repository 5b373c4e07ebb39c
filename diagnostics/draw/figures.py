"""Plotly figures for the monitoring views. Data in (metric frames, run tables, spectra, histograms), figures out.

No Streamlit here: the dashboard pages and the offline HTML report draw the same figures. Every figure has a
title, axis titles with units, and one trace per run (or per run and quantity) named so a legend reads alone.
Traces are drawn against the transparent "plotly_white" template so Streamlit's light and dark themes both
read them.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from .alarm_figures import add_markers, alarm_timeline_figure  # noqa: F401  (their module; kept importable here)
from .chart_style import (
    DASHES,
    PALETTE,
    TEMPLATE,
    dash_key,
    finite_values,
    legend_name,
    legend_right,
    run_colours,
    value_axis,
)

LOSS_COLUMNS = ("loss/total", "loss/contrastive", "loss/reconstruction", "loss/kl")
BATCH_COS_COLUMNS = ("batch/pos_cos", "batch/neg_cos", "batch/hardest_neg_cos")


def run_color(index: int) -> str:
    """A colour by position, for things that are not runs (the quantities of one breakdown)."""
    return PALETTE[index % len(PALETTE)]


def run_legend(colours: Mapping[str, str]) -> list[dict]:
    """One legend entry per run (no data, meta "legend"): the data traces stay out of the legend, so it
    holds one short line per run however many quantities a figure draws; clicking it hides the run."""
    return [
        dict(
            type="scatter",
            x=[None],
            y=[None],
            mode="lines",
            name=legend_name(run),
            legendgroup=run,
            showlegend=True,
            meta="legend",
            line=dict(color=colour, width=3),
            hoverinfo="skip",
        )
        for run, colour in colours.items()
    ]


_TEMPLATE_JSON = pio.templates[TEMPLATE].to_plotly_json()  # resolved once: an unvalidated figure keeps a name as is


def _figure(
    title: str,
    x_title: str,
    y_title: str,
    traces: Sequence[dict] = (),
    height: int = 400,
    title_size: int | None = None,
    **layout,
) -> go.Figure:
    """One figure built in one go from plain trace dicts, unvalidated: plotly's validation of the template and
    traces cost ~30 ms a figure, and the Live page redraws ten every few seconds. The dicts here are fixed
    by this module; tests/test_chart_style.py checks a validated rebuild gives the same JSON."""
    # The legend sits right of the plot (Plotly widens the margin for it): under the plot it ran into the
    # x-axis title, above it into the chart title.
    base = dict(
        template=_TEMPLATE_JSON,
        title=dict(text=title, x=0, xanchor="left", **(dict(font=dict(size=title_size)) if title_size else {})),
        height=height,
        hovermode="x unified",
        xaxis=dict(title=dict(text=x_title)),
        yaxis=dict(title=dict(text=y_title)),
        legend=legend_right(),
        margin=dict(l=60, r=20, t=60, b=50),
    )
    base.update(layout)
    return go.Figure(dict(data=list(traces), layout=base), _validate=False)


def _trace_name(run: str, quantity: str, runs: int, quantities: int) -> str:
    if runs == 1:
        return quantity
    return run if quantities == 1 else f"{run} · {quantity}"


def _finite(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows where `column` is a number; ±inf shown as gaps like NaN (a diverged loss is a gap, not a spike)."""
    values = pd.to_numeric(frame[column], errors="coerce").replace([np.inf, -np.inf], np.nan)
    keep = values.notna()
    return pd.DataFrame({"step": frame["step"][keep].to_numpy(), column: values[keep].to_numpy()})


def lines(
    frames: Mapping[str, pd.DataFrame],
    columns: Sequence[str],
    title: str,
    y_title: str,
    x_title: str = "training step",
    log_y: bool = False,
    labels: Mapping[str, str] | None = None,
    mode: str = "lines",
    y_min: float | None = None,
    y_max: float | None = None,
) -> go.Figure:
    """One line per (run, column) that exists; columns missing from every run draw nothing.

    Colour is the run (chart_style.run_colours: the same on every page), the line style the quantity (named
    in the title's second line); the legend holds one entry per run. `y_min`/`y_max`: bounds the quantity
    cannot cross (τ ≥ 0, a fraction ≤ 1): the axis starts there instead of at a padded negative value."""
    present = [c for c in columns if any(c in f.columns for f in frames.values())]
    colours = run_colours(frames)
    names = [(labels or {}).get(column, column) for column in present]
    traces, drawn = [], {}
    for run, frame in frames.items():
        for q, column in enumerate(present):
            if column not in frame.columns:
                continue
            data = _finite(frame, column)
            name = _trace_name(run, names[q], len(frames), len(present))
            drawn[run] = colours[run]
            traces.append(
                dict(
                    type="scatter",
                    x=data["step"].to_numpy(),
                    y=data[column].to_numpy(),
                    mode=mode,
                    name=name,
                    legendgroup=run,
                    showlegend=False,
                    marker=dict(size=5),
                    line=dict(color=colours[run], dash=DASHES[q % len(DASHES)]),
                )
            )
    key = dash_key(names)
    y_axis = dict(title=dict(text=y_title), hoverformat=".4g")  # hover: the full trace name and 4 digits
    y_axis.update(value_axis(finite_values(traces), log=log_y, lo=y_min, hi=y_max))  # the one axis rule
    full_title = f"{title}<br><sup>{key}</sup>" if key else title
    return _figure(full_title, x_title, y_title, traces + run_legend(drawn), yaxis=y_axis)


# -- Live ------------------------------------------------------------------------------------------


def loss_figure(frames: Mapping[str, pd.DataFrame], log_y: bool = True) -> go.Figure:
    return lines(
        frames,
        LOSS_COLUMNS,
        "Losses",
        "loss (nats per sample)",
        log_y=log_y,
        labels={c: c.split("/", 1)[1] for c in LOSS_COLUMNS},
    )


def loss_ratio_figure(frames: Mapping[str, pd.DataFrame]) -> go.Figure:
    """λ·L_contrastive / L_reconstruction: how much of the objective the contrastive term is, while λ warms up."""
    ratios = {}
    for run, frame in frames.items():
        if "loss/contrastive" not in frame.columns or "loss/reconstruction" not in frame.columns:
            continue
        weight = frame["lambda"] if "lambda" in frame.columns else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = weight * frame["loss/contrastive"] / frame["loss/reconstruction"]
        ratios[run] = pd.DataFrame({"step": frame["step"], "ratio": ratio})
        if "lambda" in frame.columns:
            ratios[run]["lambda"] = frame["lambda"]
    fig = lines(
        ratios,
        ["ratio", "lambda"],
        "Contrastive vs reconstruction across the warm-up",
        "ratio (dimensionless)",
        labels={"ratio": "λ·contrastive / reconstruction", "lambda": "λ"},
        y_min=0,
    )  # both losses and λ are ≥ 0
    return fig


def batch_cosine_figure(frames: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Mean positive and negative cosine in the batch, and their gap (what the loss is pushing apart)."""
    with_gap = {}
    for run, frame in frames.items():
        frame = frame.copy()
        if "batch/pos_cos" in frame.columns and "batch/neg_cos" in frame.columns:
            frame["gap"] = frame["batch/pos_cos"] - frame["batch/neg_cos"]
        with_gap[run] = frame
    return lines(
        with_gap,
        [*BATCH_COS_COLUMNS, "gap"],
        "Batch cosine similarity",
        "cosine similarity",
        labels={
            "batch/pos_cos": "positive",
            "batch/neg_cos": "negative",
            "batch/hardest_neg_cos": "hardest negative",
            "gap": "positive − negative",
        },
    )


def snapshot_metric_figure(
    tables: Mapping[str, pd.DataFrame],
    columns: Sequence[str],
    title: str,
    y_title: str,
    labels: Mapping[str, str] | None = None,
    y_min: float | None = None,
) -> go.Figure:
    """Snapshot-level numbers (one point per snapshot) as lines with markers."""
    return lines(tables, columns, title, y_title, labels=labels, mode="lines+markers", y_min=y_min)


def live_panels(
    frames: Mapping[str, pd.DataFrame], tables: Mapping[str, pd.DataFrame], log_loss: bool = True
) -> list[go.Figure]:
    """The Live page's step charts, in reading order, for chart_style.step_grid (one linked figure)."""
    return [
        loss_figure(frames, log_y=log_loss),
        loss_ratio_figure(frames),
        lines(frames, ["temperature"], "Temperature τ", "τ", y_min=0),
        lines(frames, ["lr"], "Learning rate", "learning rate", y_min=0),
        lines(frames, ["grad_norm"], "Gradient norm (before clipping)", "‖∇θ‖₂", y_min=0),
        batch_cosine_figure(frames),
        lines(
            frames,
            ["batch/top1"],
            "Positive top-1 accuracy in the batch",
            "fraction",
            labels={"batch/top1": "top-1"},
            y_min=0,
            y_max=1.02,
        ),
        snapshot_metric_figure(
            tables, ["alignment"], "Alignment over snapshots (lower is better)", "E‖x̂−x̂⁺‖²", y_min=0
        ),
        snapshot_metric_figure(
            tables, ["uniformity"], "Uniformity over snapshots (lower is better)", "log E exp(−2‖x̂−ŷ‖²)"
        ),
        snapshot_metric_figure(tables, ["effective_rank"], "Effective rank over snapshots", "dimensions", y_min=0),
    ]


# -- Geometry --------------------------------------------------------------------------------------


def align_uniform_plane(tables: Mapping[str, pd.DataFrame], highlight_step: int | None = None) -> go.Figure:
    """Wang & Isola's plane: uniformity loss (x) against alignment loss (y); lower-left is better.

    One trajectory per run (its colour) through its snapshots; the markers are coloured by step on one
    scale for every run (early pale, late dark), the first snapshot is an open circle, the last a diamond,
    and `highlight_step` (the step chosen below the chart) a ring on every run that has it."""
    colours = run_colours(tables)
    steps = [s for t in tables.values() for s in pd.to_numeric(t["step"], errors="coerce").dropna()]
    lo, hi = (min(steps), max(steps)) if steps else (0, 1)
    traces, ends, drawn = [], [], {}
    for run, table in tables.items():
        data = table[["step", "uniformity", "alignment"]].replace([np.inf, -np.inf], np.nan).dropna()
        if data.empty:
            continue
        drawn[run] = colours[run]
        x, y, step = data["uniformity"].to_numpy(), data["alignment"].to_numpy(), data["step"].to_numpy()
        hover = "step %{customdata}<br>uniformity %{x:.3f}<br>alignment %{y:.3f}"
        traces.append(
            dict(
                type="scatter",
                x=x,
                y=y,
                name=run,
                legendgroup=run,
                showlegend=False,
                mode="lines+markers",
                line=dict(color=colours[run], width=1.5),
                customdata=step,
                marker=dict(
                    size=8,
                    color=step,
                    colorscale="Viridis",
                    cmin=lo,
                    cmax=hi,
                    line=dict(color=colours[run], width=1),
                    showscale=not traces,
                    colorbar=dict(
                        title=dict(text="step", side="top"),
                        thickness=12,
                        len=0.45,
                        x=1.02,
                        xanchor="left",
                        y=0,
                        yanchor="bottom",
                    ),
                ),
                hovertemplate=hover + "<extra>" + run + "</extra>",
            )
        )
        ends.append(
            dict(
                type="scatter",
                x=[x[0], x[-1]],
                y=[y[0], y[-1]],
                mode="markers",
                legendgroup=run,
                meta="marker",
                showlegend=False,
                name=run + " · start, end",
                customdata=[step[0], step[-1]],
                hovertemplate=hover + "<extra>" + run + "</extra>",
                marker=dict(
                    size=[13, 15],
                    symbol=["circle-open", "diamond"],
                    color=colours[run],
                    line=dict(width=2, color=colours[run]),
                ),
            )
        )
        if highlight_step is not None and (step == highlight_step).any():
            at = int(np.flatnonzero(step == highlight_step)[0])
            ends.append(
                dict(
                    type="scatter",
                    x=[x[at]],
                    y=[y[at]],
                    mode="markers",
                    legendgroup=run,
                    meta="marker",
                    showlegend=False,
                    name=f"{run} · step {highlight_step}",
                    hoverinfo="skip",
                    marker=dict(size=22, symbol="circle-open", color="#d62728", line=dict(width=3)),
                )
            )
    legend = run_legend(drawn)  # in the right margin above the colour bar (its lower half)
    return _figure(
        "Alignment–uniformity plane (lower-left is better)<br><sup>○ first snapshot · ◆ latest"
        + (f" · ring: step {highlight_step}" if highlight_step is not None else "")
        + "</sup>",
        "uniformity loss  log E exp(−2‖x̂−ŷ‖²)  (nats)",
        "alignment loss  E‖x̂−x̂⁺‖²",
        traces + ends + legend,
        height=480,
        hovermode="closest",
    )


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total else counts.astype(float)


# The title of a chart in a half- or quarter-width cell: 14 px, so a run name cut to 28 characters and its
# step fit a 300 px cell (the report and the Report page at 1100 px wide).
NARROW_TITLE_SIZE = 14
HISTOGRAM_COLOURS = {"positive pairs": "#1CA71C", "negative pairs": "#FB0D0D", "hardest negative": "#750D86"}


def similarity_histogram_figure(
    histograms: Mapping[str, tuple],
    scaled: bool = False,
    temperature: float | None = None,
    title_suffix: str = "",
    x_range: Sequence[float] | None = None,
    height: int = 400,
    narrow: bool = False,
) -> go.Figure:
    """Positive vs negative cosine densities (or cos/τ, the logits the softmax sees, when `scaled`).

    Drawn as step outlines with a faint fill, so no distribution hides another (overlaid bars did: on a
    collapsed run only the hardest-negative bars showed). `narrow` (one of several side by side): the title
    is the suffix alone and the legend a row above the plot."""
    if scaled:
        keys = {"scaled_positive": "positive pairs", "scaled_negative": "negative pairs"}
        x_title = f"logit  cos/τ  (τ = {temperature:g})" if temperature else "logit  cos/τ"
        title = "Temperature-scaled similarities"
    else:
        keys = {"positive": "positive pairs", "negative": "negative pairs", "hardest_negative": "hardest negative"}
        x_title, title = "cosine similarity", "Cosine similarities of positive and negative pairs"
    traces = []
    for key, name in keys.items():
        if key not in histograms:
            continue
        counts, edges = (np.asarray(a) for a in histograms[key])
        centers = (edges[:-1] + edges[1:]) / 2
        colour = HISTOGRAM_COLOURS[name]
        traces.append(
            dict(
                type="scatter",
                x=centers,
                y=_density(counts, edges),
                name=name,
                mode="lines",
                line=dict(color=colour, width=2, shape="hvh"),
                fill="tozeroy",
                fillcolor=colour + "1f",
            )
        )  # 12% opaque: every outline stays visible
    x_axis = dict(title=dict(text=x_title), range=list(x_range) if x_range is not None else None)
    if narrow:  # no room for a legend beside a quarter-width plot: the key is the title's coloured second line
        key = " · ".join(f"<span style='color:{HISTOGRAM_COLOURS[t['name']]}'>{t['name']}</span>" for t in traces)
        title = f"{title_suffix.lstrip(' —')}<br><sup>{key}</sup>"
        for t in traces:
            t["showlegend"] = False
    layout = dict(margin=dict(l=50, r=10, t=88, b=50), title_size=NARROW_TITLE_SIZE) if narrow else {}
    if not narrow and title_suffix:  # the run and step on a line of their own: one line ran out of the chart
        title = f"{title}<br><sup>{title_suffix.lstrip(' —')}</sup>"
    return _figure(
        title,
        x_title,
        "density (per unit on x)",
        traces,
        hovermode="x unified",
        height=height,
        xaxis=x_axis,
        yaxis=dict(title=dict(text="density"), rangemode="nonnegative"),
        **layout,
    )


def breakdown_figure(table: pd.DataFrame, column: str) -> go.Figure:
    """Alignment and within-group uniformity per group of `column` (bars, one subplot each)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "alignment loss<br>(lower is better)",  # half a chart each
            "uniformity loss within group<br>(lower is better)",
        ),
    )
    groups = table["group"].astype(str)
    fig.add_trace(go.Bar(x=groups, y=table["alignment"], name="alignment", marker_color=PALETTE[0]), 1, 1)
    fig.add_trace(go.Bar(x=groups, y=table["uniformity"], name="uniformity", marker_color=PALETTE[1]), 1, 2)
    fig.update_layout(
        template=TEMPLATE,
        title=dict(text=f"Breakdown by {column}"),
        height=380,
        showlegend=False,
        margin=dict(l=60, r=20, t=100, b=50),
    )
    fig.update_xaxes(title_text=column)
    fig.update_yaxes(title_text="E‖x̂−x̂⁺‖²", row=1, col=1)
    fig.update_yaxes(title_text="log E exp(−2‖x̂−ŷ‖²) (nats)", row=1, col=2)
    return fig


# -- Collapse --------------------------------------------------------------------------------------


def spectrum_figure(
    spectra: Mapping[int, np.ndarray], run: str = "", normalize: bool = True, narrow: bool = False
) -> go.Figure:
    """Singular values of the centred embedding matrix, one line per step, log scale.

    A healthy spectrum decays slowly; dimensional collapse is a cliff; complete collapse leaves one value.
    `narrow` (one of several side by side): the title is the run, what is drawn its second line."""
    steps = sorted(spectra)
    traces = []
    for i, step in enumerate(steps):
        s = np.asarray(spectra[step], dtype=float)
        if normalize and s.size and s[0] > 0:
            s = s / s[0]
        s = np.where(s > 0, s, np.nan)  # zeros cannot sit on a log axis
        shade = i / max(len(steps) - 1, 1)  # the step colour scale of the alignment–uniformity plane
        traces.append(
            dict(
                type="scatter",
                x=np.arange(1, len(s) + 1),
                y=s,
                name=f"step {step}",
                mode="lines",
                line=dict(color=sample_colorscale("Viridis", [shade])[0]),
            )
        )
    y_title = "σ_k / σ_1" if normalize else "singular value σ_k"
    narrow = narrow and bool(run)
    title = (
        f"{run}<br><sup>singular value spectrum by snapshot</sup>"
        if narrow
        else f"Singular value spectrum{' — ' + run if run else ''}"
    )
    layout = dict(title_size=NARROW_TITLE_SIZE, margin=dict(l=60, r=20, t=88, b=50)) if narrow else {}
    return _figure(
        title,
        "index k (largest first)",
        y_title,
        traces,
        hovermode="closest",
        yaxis=dict(title=dict(text=y_title), **value_axis(finite_values(traces), log=True)),
        **layout,
    )


def effective_rank_figure(tables: Mapping[str, pd.DataFrame], dims: Mapping[str, int] | None = None) -> go.Figure:
    """Effective rank (exp of the spectral entropy) of the embeddings (after the projection head) and of the
    backbone features (before it); a falling embedding rank with a steady feature rank blames the head."""
    fig = lines(
        tables,
        ["effective_rank", "effective_rank_features"],
        "Effective rank over training",
        "effective rank (dimensions)",
        labels={"effective_rank": "embeddings (after head)", "effective_rank_features": "features (before head)"},
        mode="lines+markers",
        y_min=0,
    )
    for d in sorted(set((dims or {}).values())):
        fig.add_hline(
            y=d,
            line=dict(color="gray", dash="dot"),
            annotation_text=f"embedding dim d = {d}",
            annotation_position="top left",
        )
    return fig


def std_figure(tables: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Per-dimension std of the ℓ2-normalised embeddings against 1/√d, its value for a uniform spread.

    Near 0 means complete collapse (every point the same); near 1/√d means the sphere is used."""
    fig = lines(
        tables,
        ["normalized_std"],
        "Std of normalised embeddings<br><sup>dotted: 1/√d, a uniform spread</sup>",
        "mean per-dimension std",
        labels={"normalized_std": "std of ẑ"},
        mode="lines+markers",
        y_min=0,
    )
    colours = run_colours(tables)
    for run, table in tables.items():
        if "inv_sqrt_d" not in table.columns or table.empty:
            continue
        value = float(table["inv_sqrt_d"].iloc[-1])
        if math.isfinite(value):
            fig.add_trace(
                go.Scatter(
                    x=[table["step"].min(), table["step"].max()],
                    y=[value, value],
                    name="1/√d" if len(tables) == 1 else f"{run} · 1/√d",
                    mode="lines",
                    legendgroup=run,
                    showlegend=False,
                    line=dict(color=colours[run], dash="dot"),
                )
            )
    return fig


def figure_traces(fig: go.Figure) -> dict[str, int]:
    """{trace name: number of points}: what tests and the report check a figure by."""
    out = {}
    for trace in fig.data:
        x = trace.x if trace.x is not None else ()
        out[trace.name] = len(x)
    return out
