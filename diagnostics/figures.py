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
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
# One colour per run, stable across figures (plotly's default qualitative palette).
PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
           "#FF97FF", "#FECB52")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

LOSS_COLUMNS = ("loss/total", "loss/contrastive", "loss/reconstruction", "loss/kl")
BATCH_COS_COLUMNS = ("batch/pos_cos", "batch/neg_cos", "batch/hardest_neg_cos")


def run_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _figure(title: str, x_title: str, y_title: str, traces: Sequence[dict] = (), height: int = 400,
            **layout) -> go.Figure:
    """One figure built in one go from plain trace dicts: plotly validates once instead of per add_trace,
    which matters on the Live page that redraws ten figures every few seconds."""
    # The legend goes under the x-axis title: above the plot it collides with the title once there are
    # more than a few traces.
    base = dict(template=TEMPLATE, title=dict(text=title), height=height, hovermode="x unified",
                xaxis=dict(title=dict(text=x_title)), yaxis=dict(title=dict(text=y_title)),
                legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0),
                margin=dict(l=60, r=20, t=50, b=40))
    base.update(layout)
    return go.Figure(dict(data=list(traces), layout=base))


def _trace_name(run: str, quantity: str, runs: int, quantities: int) -> str:
    if runs == 1:
        return quantity
    return run if quantities == 1 else f"{run} · {quantity}"


def _finite(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows where `column` is a number; ±inf shown as gaps like NaN (a diverged loss is a gap, not a spike)."""
    values = pd.to_numeric(frame[column], errors="coerce").replace([np.inf, -np.inf], np.nan)
    keep = values.notna()
    return pd.DataFrame({"step": frame["step"][keep].to_numpy(), column: values[keep].to_numpy()})


def lines(frames: Mapping[str, pd.DataFrame], columns: Sequence[str], title: str, y_title: str,
          x_title: str = "training step", log_y: bool = False, labels: Mapping[str, str] | None = None,
          mode: str = "lines") -> go.Figure:
    """One line per (run, column) that exists; columns missing from every run draw nothing."""
    present = [c for c in columns if any(c in f.columns for f in frames.values())]
    traces = []
    for r, (run, frame) in enumerate(frames.items()):
        for q, column in enumerate(present):
            if column not in frame.columns:
                continue
            data = _finite(frame, column)
            many = len(frames) > 1
            traces.append(dict(type="scatter", x=data["step"].to_numpy(), y=data[column].to_numpy(), mode=mode,
                               name=_trace_name(run, (labels or {}).get(column, column), len(frames), len(present)),
                               line=dict(color=run_color(r if many else q), dash=DASHES[q % len(DASHES)] if many
                                         else "solid")))
    # dtick=1 on a log axis: ticks at powers of ten only (the default 2-and-5 minor labels read as noise)
    y_axis = dict(title=dict(text=y_title), type="log", dtick=1) if log_y else dict(title=dict(text=y_title))
    return _figure(title, x_title, y_title, traces, yaxis=y_axis)


# -- Live ------------------------------------------------------------------------------------------

def loss_figure(frames: Mapping[str, pd.DataFrame], log_y: bool = True) -> go.Figure:
    return lines(frames, LOSS_COLUMNS, "Losses", "loss (nats per sample)", log_y=log_y,
                 labels={c: c.split("/", 1)[1] for c in LOSS_COLUMNS})


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
    fig = lines(ratios, ["ratio", "lambda"], "Contrastive vs reconstruction across the warm-up",
                "ratio (dimensionless)", labels={"ratio": "λ·contrastive / reconstruction", "lambda": "λ"})
    return fig


def batch_cosine_figure(frames: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Mean positive and negative cosine in the batch, and their gap (what the loss is pushing apart)."""
    with_gap = {}
    for run, frame in frames.items():
        frame = frame.copy()
        if "batch/pos_cos" in frame.columns and "batch/neg_cos" in frame.columns:
            frame["gap"] = frame["batch/pos_cos"] - frame["batch/neg_cos"]
        with_gap[run] = frame
    return lines(with_gap, [*BATCH_COS_COLUMNS, "gap"], "Batch cosine similarity", "cosine similarity",
                 labels={"batch/pos_cos": "positive", "batch/neg_cos": "negative",
                         "batch/hardest_neg_cos": "hardest negative", "gap": "positive − negative"})


def snapshot_metric_figure(tables: Mapping[str, pd.DataFrame], columns: Sequence[str], title: str,
                           y_title: str, labels: Mapping[str, str] | None = None) -> go.Figure:
    """Snapshot-level numbers (one point per snapshot) as lines with markers."""
    return lines(tables, columns, title, y_title, labels=labels, mode="lines+markers")


# -- Geometry --------------------------------------------------------------------------------------

def align_uniform_plane(tables: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Wang & Isola's plane: uniformity loss (x) against alignment loss (y); lower-left is better.

    One trajectory per run through its snapshots, the last snapshot drawn larger."""
    traces = []
    for r, (run, table) in enumerate(tables.items()):
        data = table[["step", "uniformity", "alignment"]].replace([np.inf, -np.inf], np.nan).dropna()
        if data.empty:
            continue
        sizes = [7] * (len(data) - 1) + [14]
        traces.append(dict(type="scatter", x=data["uniformity"].to_numpy(), y=data["alignment"].to_numpy(),
                           name=run, mode="lines+markers", marker=dict(size=sizes, color=run_color(r)),
                           line=dict(color=run_color(r)), customdata=data["step"].to_numpy(),
                           hovertemplate="step %{customdata}<br>uniformity %{x:.3f}<br>alignment %{y:.3f}"
                                         "<extra>" + run + "</extra>"))
    return _figure("Alignment–uniformity plane (lower-left is better)",
                   "uniformity loss  log E exp(−2‖x̂−ŷ‖²)  (nats)", "alignment loss  E‖x̂−x̂⁺‖²", traces,
                   height=460, hovermode="closest")


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total else counts.astype(float)


def similarity_histogram_figure(histograms: Mapping[str, tuple], scaled: bool = False,
                                temperature: float | None = None, title_suffix: str = "") -> go.Figure:
    """Positive vs negative cosine densities (or cos/τ, the logits the softmax sees, when `scaled`)."""
    if scaled:
        keys = {"scaled_positive": "positive pairs", "scaled_negative": "negative pairs"}
        x_title = f"logit  cos/τ  (τ = {temperature:g})" if temperature else "logit  cos/τ"
        title = "Temperature-scaled similarities"
    else:
        keys = {"positive": "positive pairs", "negative": "negative pairs", "hardest_negative": "hardest negative"}
        x_title, title = "cosine similarity", "Cosine similarities of positive and negative pairs"
    traces = []
    colors = {"positive pairs": "#00CC96", "negative pairs": "#EF553B", "hardest negative": "#AB63FA"}
    for key, name in keys.items():
        if key not in histograms:
            continue
        counts, edges = (np.asarray(a) for a in histograms[key])
        centers = (edges[:-1] + edges[1:]) / 2
        traces.append(dict(type="bar", x=centers, y=_density(counts, edges), width=np.diff(edges), name=name,
                           opacity=0.55, marker=dict(color=colors[name])))
    return _figure(title + title_suffix, x_title, "density (per unit on x)", traces, barmode="overlay",
                   hovermode="closest")


def breakdown_figure(table: pd.DataFrame, column: str) -> go.Figure:
    """Alignment and within-group uniformity per group of `column` (bars, one subplot each)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("alignment loss (lower is better)",
                                                        "uniformity loss within group (lower is better)"))
    groups = table["group"].astype(str)
    fig.add_trace(go.Bar(x=groups, y=table["alignment"], name="alignment", marker_color=PALETTE[0]), 1, 1)
    fig.add_trace(go.Bar(x=groups, y=table["uniformity"], name="uniformity", marker_color=PALETTE[1]), 1, 2)
    fig.update_layout(template=TEMPLATE, title=dict(text=f"Breakdown by {column}"), height=360,
                      showlegend=False, margin=dict(l=60, r=20, t=80, b=50))
    fig.update_xaxes(title_text=column)
    fig.update_yaxes(title_text="E‖x̂−x̂⁺‖²", row=1, col=1)
    fig.update_yaxes(title_text="log E exp(−2‖x̂−ŷ‖²) (nats)", row=1, col=2)
    return fig


# -- Collapse --------------------------------------------------------------------------------------

def spectrum_figure(spectra: Mapping[int, np.ndarray], run: str = "", normalize: bool = True) -> go.Figure:
    """Singular values of the centred embedding matrix, one line per step, log scale.

    A healthy spectrum decays slowly; dimensional collapse is a cliff; complete collapse leaves one value."""
    steps = sorted(spectra)
    traces = []
    for i, step in enumerate(steps):
        s = np.asarray(spectra[step], dtype=float)
        if normalize and s.size and s[0] > 0:
            s = s / s[0]
        s = np.where(s > 0, s, np.nan)  # zeros cannot sit on a log axis
        shade = 0.25 + 0.75 * (i / max(len(steps) - 1, 1))
        traces.append(dict(type="scatter", x=np.arange(1, len(s) + 1), y=s, name=f"step {step}", mode="lines",
                           line=dict(color=f"rgba(99,110,250,{shade:.2f})")))
    y_title = "σ_k / σ_1" if normalize else "singular value σ_k"
    return _figure(f"Singular value spectrum{' — ' + run if run else ''}", "index k (largest first)", y_title,
                   traces, hovermode="closest", yaxis=dict(title=dict(text=y_title), type="log", dtick=1))


def effective_rank_figure(tables: Mapping[str, pd.DataFrame], dims: Mapping[str, int] | None = None) -> go.Figure:
    """Effective rank (exp of the spectral entropy) of the embeddings (after the projection head) and of the
    backbone features (before it); a falling embedding rank with a steady feature rank blames the head."""
    fig = lines(tables, ["effective_rank", "effective_rank_features"], "Effective rank over training",
                "effective rank (dimensions)", labels={"effective_rank": "embeddings (after head)",
                                                       "effective_rank_features": "features (before head)"},
                mode="lines+markers")
    for d in sorted(set((dims or {}).values())):
        fig.add_hline(y=d, line=dict(color="gray", dash="dot"), annotation_text=f"d = {d}",
                      annotation_position="top left")
    return fig


def std_figure(tables: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Per-dimension std of the ℓ2-normalised embeddings against 1/√d, its value for a uniform spread.

    Near 0 means complete collapse (every point the same); near 1/√d means the sphere is used."""
    fig = lines(tables, ["normalized_std"], "Std of normalised embeddings vs 1/√d",
                "mean per-dimension std", labels={"normalized_std": "std of ẑ"}, mode="lines+markers")
    for r, (run, table) in enumerate(tables.items()):
        if "inv_sqrt_d" not in table.columns or table.empty:
            continue
        value = float(table["inv_sqrt_d"].iloc[-1])
        if math.isfinite(value):
            fig.add_trace(go.Scatter(x=[table["step"].min(), table["step"].max()], y=[value, value],
                                     name="1/√d" if len(tables) == 1 else f"{run} · 1/√d", mode="lines",
                                     line=dict(color=run_color(r), dash="dot")))
    fig.update_yaxes(rangemode="tozero")
    return fig


def figure_traces(fig: go.Figure) -> dict[str, int]:
    """{trace name: number of points}: what tests and the report check a figure by."""
    out = {}
    for trace in fig.data:
        x = trace.x if trace.x is not None else ()
        out[trace.name] = len(x)
    return out


# -- alarm onsets and config events -----------------------------------------------------------------------

SEVERITY_COLOR = {"critical": "#cf222e", "warning": "#bf8700", "info": "#8c959f"}
EVENT_COLOR = "#57606a"


def _text(value) -> str:
    """A string from a run (kind, config key, message) as plain text: plotly parses a little HTML."""
    import html
    return html.escape(str(value), quote=False)


def add_markers(figs, alarms: Mapping[str, Sequence] | None = None, events: Mapping[str, Sequence] | None = None):
    """Vertical lines on step charts: each run's alarm onsets (dashed, coloured by severity; info left out)
    and config events (dotted grey, e.g. `contrastive.negatives_off_step = 150`). `alarms`: run -> Alarm
    list (diagnostics.alarms.trend_alarms); `events`: run -> Event list (diagnostics.advice.config_events).
    Takes one figure or a list; returns the same. Several runs' lines at one step are drawn once."""
    many = isinstance(figs, (list, tuple))
    onsets: dict[int, tuple[str, str]] = {}
    for run, found in (alarms or {}).items():
        for a in found:
            if a.severity != "info" and (a.step_started not in onsets or a.severity == "critical"):
                onsets[int(a.step_started)] = (a.severity, f"{a.kind.replace('_', ' ')}")
    switches = {int(e.step): e.key for found in (events or {}).values() for e in found}
    shapes, notes = [], []
    for step, (severity, label) in sorted(onsets.items()):
        shapes.append(dict(type="line", xref="x", yref="paper", x0=step, x1=step, y0=0, y1=1,
                           line=dict(color=SEVERITY_COLOR[severity], dash="dash", width=1.5)))
        notes.append(dict(x=step, y=1, xref="x", yref="paper", text=_text(label), showarrow=False,
                          xanchor="left", yanchor="top", font=dict(size=10, color=SEVERITY_COLOR[severity])))
    for step, key in sorted(switches.items()):
        shapes.append(dict(type="line", xref="x", yref="paper", x0=step, x1=step, y0=0, y1=1,
                           line=dict(color=EVENT_COLOR, dash="dot", width=1)))
        notes.append(dict(x=step, y=0, xref="x", yref="paper", text=_text(key), showarrow=False,
                          xanchor="left", yanchor="bottom", font=dict(size=9, color=EVENT_COLOR)))
    for fig in figs if many else [figs]:
        if len(fig.data) and (shapes or notes):
            fig.update_layout(shapes=list(fig.layout.shapes) + shapes,
                              annotations=list(fig.layout.annotations) + notes)
    return figs


def alarm_timeline_figure(alarms: Mapping[str, Sequence], events: Mapping[str, Sequence] | None = None,
                          last_step: Mapping[str, int] | None = None) -> go.Figure:
    """One row per run and alarm kind: a bar from the estimated onset to the detection (a diamond), then a
    thin line to the run's last snapshot while it lasts; config events as grey ticks on the run's own row.
    Hover shows the alarm's message as plain text."""
    traces, rows = [], []
    for r, (run, found) in enumerate(alarms.items()):
        run_events = list((events or {}).get(run, ()))
        for a in found:
            row = f"{_text(run)} · {a.kind.replace('_', ' ')}" if len(alarms) > 1 else a.kind.replace("_", " ")
            rows.append(row)
            color = SEVERITY_COLOR.get(a.severity, EVENT_COLOR)
            end = (last_step or {}).get(run, a.step_detected)
            hover = _text(f"{a.severity}: {a.message}")
            traces.append(dict(type="scatter", x=[a.step_started, a.step_detected], y=[row, row], mode="lines",
                               line=dict(color=color, width=10), name=a.severity, legendgroup=a.severity,
                               showlegend=False, hovertext=[hover, hover], hoverinfo="text"))
            traces.append(dict(type="scatter", x=[a.step_detected, max(end, a.step_detected)], y=[row, row],
                               mode="lines", line=dict(color=color, width=2), name=a.severity, legendgroup=a.severity,
                               showlegend=False, hoverinfo="skip"))
            traces.append(dict(type="scatter", x=[a.step_detected], y=[row], mode="markers",
                               marker=dict(symbol="diamond", size=12, color=color, line=dict(color="white", width=1)),
                               name=a.severity, legendgroup=a.severity, showlegend=False,
                               hovertext=[hover], hoverinfo="text"))
        if run_events:
            row = (f"{_text(run)} · " if len(alarms) > 1 else "") + "config events"
            rows.append(row)
            traces.append(dict(type="scatter", x=[e.step for e in run_events], y=[row] * len(run_events),
                               mode="markers+text", marker=dict(symbol="line-ns-open", size=16, color=EVENT_COLOR),
                               text=[_text(e.key) for e in run_events], textposition="top center",
                               hovertext=[_text(e.text) for e in run_events], hoverinfo="text", showlegend=False,
                               name="config events",
                               textfont=dict(size=9, color=EVENT_COLOR)))
    for severity, color in SEVERITY_COLOR.items():  # a legend that explains the colours once
        if any(t.get("name") == severity for t in traces):
            traces.append(dict(type="scatter", x=[None], y=[None], mode="markers", name=severity,
                               marker=dict(symbol="diamond", size=12, color=color)))
    height = 140 + 34 * max(1, len(dict.fromkeys(rows)))
    fig = _figure("Alarms: estimated onset → detection (diamond)", "training step", "", traces, height=height,
                  hovermode="closest")
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=list(dict.fromkeys(rows)))
    if not rows:
        fig.add_annotation(text="No alarms and no config events.", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    return fig
