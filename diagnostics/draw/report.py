"""One self-contained offline HTML file about a set of runs: figures, config diff, metric table, verdicts, notes.

    python -m diagnostics report runs/a runs/b -o report.html
    build_report(["runs/a", "runs/b"], sections=["metrics", "notes"]) -> str

Same runs in, same bytes out: nothing here reads a clock or a random source (plotly's div ids are derived
from the run names and the section). plotly.js is inlined once, so the file opens without a network.
Every string that comes from a run goes through html.escape; plotly's JSON already escapes "<" as \\u003c.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from runformat.reader import Run, RunFormatError, list_runs, open_run

from . import chart_style, compare, figures, final_values

SECTIONS = (
    "overview",
    "metrics",
    "geometry",
    "similarity",
    "spectra",
    "projections",
    "ablation",
    "config",
    "verdicts",
    "alarms",
    "notes",
)
SECTION_TITLES = {
    "overview": "Runs",
    "metrics": "Metrics",
    "geometry": "Alignment and uniformity",
    "similarity": "Similarity distributions at the latest snapshot",
    "spectra": "Singular value spectra",
    "projections": "Projections (PCA of the latest snapshot)",
    "ablation": "Does the contrastive term help the generator?",
    "config": "Config differences",
    "verdicts": "Verdicts",
    "alarms": "Alarms and config events",
    "notes": "Team notes",
}
# Sections that read snapshots (the per-snapshot records; projections read the embeddings too).
SNAPSHOT_SECTIONS = ("geometry", "similarity", "spectra", "projections", "ablation", "verdicts", "alarms")
PROJECTION_POINTS = 3000  # points per run in the report's PCA scatter: a static overview, ~50 kB of JSON
SPECTRUM_STEPS = 6
DEFAULT_METRICS = ("loss/total", "loss/contrastive", "loss/reconstruction", "eval/recon_mse", "eval/psnr", "batch/top1")
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}
GRID_NOTE = (
    "Each run's latest generated.npy (docs/run-format.md): row = the digit the caption asks for; column = "
    "its width × slant words (thin, regular, thick × left-slanted, upright, right-slanted); the same noise "
    "in every run."
)


@dataclass
class RunData:
    """Everything the report and the Compare page need from one run, read once. `error` names what failed."""

    name: str
    description: str = ""
    status: str = ""
    config: dict = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["step", "wall_time"]))
    notes: str = ""
    snapshots: pd.DataFrame | None = None  # one row per snapshot step: alignment, uniformity, knn_accuracy...
    summary: dict | None = None  # the latest snapshot's summary: verdict, explanation, suggestions
    summary_step: int | None = None
    generated: object = None  # the latest generated-sample grid (Run.generated_samples), if any
    histograms: dict | None = None  # the latest snapshot's cosine histograms {name: (counts, edges)}
    spectra: dict = field(default_factory=dict)  # {step: singular values} at up to SPECTRUM_STEPS snapshots
    errors: list[str] = field(default_factory=list)
    run: Run | None = field(default=None, repr=False)  # for the sections that read a snapshot on demand


def collect(run: Run, with_snapshots: bool = True, compute: bool = True) -> RunData:
    """Read one run; a broken file becomes an entry in `errors`, never an exception (one bad run must not
    sink the report). compute=False (a page): only snapshot records already written are used."""
    data = RunData(name=run.name, run=run)
    for attr, read in (
        ("config", lambda: run.config),
        ("description", lambda: run.description),
        ("status", lambda: run.status),
        ("metrics", run.metrics),
        ("notes", lambda: run.notes),
        ("generated", run.generated_samples),
    ):
        try:
            setattr(data, attr, read())
        except (RunFormatError, OSError, ValueError) as e:
            data.errors.append(f"{attr}: {e}")
    if with_snapshots:
        try:
            (data.snapshots, data.summary, data.summary_step, data.histograms, data.spectra) = snapshot_diagnostics(
                run, compute
            )
        except (RunFormatError, OSError, ValueError, KeyError) as e:
            data.errors.append(f"snapshots: {e}")
    return data


def snapshot_diagnostics(run: Run, compute: bool = True):
    """(per-snapshot table, latest snapshot's summary, its step, its cosine histograms, {step: spectrum} at up
    to SPECTRUM_STEPS snapshots spread over training) from the snapshot records (diagnostics.store.record:
    checked against their snapshot on read; computed once when missing, unless compute=False)."""
    from ..judge.summary import run_table, summary_of
    from ..store import record  # imported late: it pulls in the metric modules (torch)

    steps = run.snapshot_steps() if compute else record.ready_steps(run)
    read = record.get_or_compute if compute else record.load
    records = [rec for rec in (read(run, s) for s in steps) if rec is not None]
    if not records:
        return None, None, None, None, {}
    summaries = [summary_of(record.readable(rec)) for rec in records]
    latest = (records[-1].numbers or {}).get("histograms") or None
    histograms = {k: (h["counts"], h["edges"]) for k, h in latest.items()} if latest else None
    every = sorted({round(i * (len(records) - 1) / max(SPECTRUM_STEPS - 1, 1)) for i in range(SPECTRUM_STEPS)})
    spectra = {records[i].step: s for i in every if (s := records[i].array("spectrum")) is not None and len(s)}
    return run_table(summaries), summaries[-1], records[-1].step, histograms, spectra


def knn_accuracy(data: RunData) -> float:
    value = (data.summary or {}).get("knn_accuracy")
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def ablation(datas: list[RunData]) -> pd.DataFrame:
    return compare.ablation_table(
        {d.name: d.config for d in datas}, {d.name: d.metrics for d in datas}, {d.name: knn_accuracy(d) for d in datas}
    )


def report_metrics(datas: list[RunData], metrics: Iterable[str] | None = None) -> list[str]:
    available = compare.metric_columns({d.name: d.metrics for d in datas})
    if metrics is not None:
        return [m for m in metrics if m in available]
    chosen = [m for m in DEFAULT_METRICS if m in available]
    return chosen or available[:4]


# -- HTML pieces --------------------------------------------------------------------------------------
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def div_id(*parts: str) -> str:
    """A stable element id: same runs and section, same id (plotly would otherwise use a random uuid)."""
    return "fig-" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def figure_html(fig: go.Figure, *id_parts: str) -> str:
    """The figure as a div, or, when it has nothing to draw, the sentence saying why (no empty chart)."""
    reason = chart_style.empty_reason(fig)
    if reason:
        return f"<p class='note'>{esc(html.unescape(reason))}</p>"
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id(*id_parts), config=FIGURE_CONFIG)


def fmt(value) -> str:
    if value is None or value is pd.NA:
        return "—"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"  # 4 significant digits: what a reader compares
    return str(value)


def table_html(frame: pd.DataFrame, index: bool = False) -> str:
    head = ([esc(frame.index.name or "")] if index else []) + [esc(c) for c in frame.columns]
    rows = []
    for key, row in frame.iterrows():
        cells = ([f"<th>{esc(key)}</th>"] if index else []) + [f"<td>{esc(fmt(v))}</td>" for v in row]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _overview(datas: list[RunData], ids: tuple[str, ...]) -> str:
    frame = pd.DataFrame(
        [
            {
                "run": d.name,
                "status": d.status,
                "λ": compare.contrastive_weight(d.config),
                "last step": int(d.metrics["step"].max()) if len(d.metrics) else "",
                "description": d.description,
            }
            for d in datas
        ]
    )
    errors = "".join(f"<p class='error'>{esc(d.name)}: {esc(e)}</p>" for d in datas for e in d.errors)
    return table_html(frame) + errors


def _metrics(datas, ids, metrics, smoothing) -> str:
    frames = {d.name: d.metrics for d in datas}
    names = report_metrics(datas, metrics)
    if not names:
        return ""
    panels = [compare.metric_overlay_figure(frames, m, "step", smoothing) for m in names]
    grid = chart_style.step_grid(panels, columns=2, row_height=260, x_title="step")
    return figure_html(grid, "metrics", *names, *ids) + "<h3>Final values</h3>" + table_html(run_table(datas, names))


def run_table(datas: list[RunData], metrics: list[str]) -> pd.DataFrame:
    """One row per run, one column per metric (Compare's table: final_values.run_rows), so the file reads like
    the page: each metric's last value and the latest snapshot's numbers, the verdict last."""
    return final_values.key_first(
        final_values.run_rows(
            {d.name: d.metrics for d in datas},
            metrics,
            {d.name: d.summary for d in datas},
            {d.name: d.status for d in datas},
        )
    )


def _geometry(datas, ids) -> str:
    tables = {d.name: d.snapshots for d in datas if d.snapshots is not None}
    if not tables:
        return ""
    return figure_html(compare.align_uniform_figure(tables), "geometry", *ids)


def _similarity(datas, ids) -> str:
    figs = "".join(
        figure_html(
            figures.similarity_histogram_figure(  # narrow: the title is the run and step
                d.histograms,
                x_range=(-1.0, 1.0),
                height=340,
                narrow=True,
                title_suffix=f"{chart_style.title_name(esc(d.name))}, step {d.summary_step}",
            ),
            "similarity",
            d.name,
            *ids,
        )
        for d in datas
        if d.histograms
    )
    return f"<div class='grid'>{figs}</div>" if figs else ""


def _spectra(datas, ids) -> str:
    figs = "".join(
        figure_html(
            figures.spectrum_figure(d.spectra, run=chart_style.title_name(esc(d.name), 32), narrow=True),
            "spectra",
            d.name,
            *ids,
        )
        for d in datas
        if d.spectra
    )
    return f"<div class='grid'>{figs}</div>" if figs else ""


def _projections(datas, ids, compute: bool = True) -> str:
    figs = []
    for d in datas:
        if d.run is None or d.summary_step is None:
            continue
        try:
            fig = projection_figure(d.run, d.summary_step, compute)
            if fig is None:  # compute=False and the worker has not written the layout yet
                figs.append(
                    f"<p class='note'>{esc(d.name)}: the PCA layout of step {d.summary_step} is not "
                    "computed yet (the dashboard's worker writes it).</p>"
                )
                continue
        except (RunFormatError, OSError, ValueError, KeyError) as e:
            figs.append(f"<p class='error'>{esc(d.name)}: projection: {esc(e)}</p>")
            continue
        figs.append(figure_html(fig, "projections", d.name, *ids))
    return f"<div class='grid'>{''.join(figs)}</div>" if figs else ""


def projection_figure(run: Run, step: int, compute: bool = True) -> go.Figure | None:
    """The cached PCA layout of one snapshot (diagnostics.store.cache: computed once, exact), every k-th point up
    to PROJECTION_POINTS, coloured by label when the snapshot has labels. compute=False (a page): None when
    the layout is not on disk yet."""
    from ..store.cache import cached_projection, projection_if_ready

    xy = cached_projection(run, step, "pca") if compute else projection_if_ready(run, step, "pca")
    if xy is None:
        return None
    labels = run.snapshot(step, fields=("labels",)).labels
    keep = np.arange(0, len(xy), max(1, -(-len(xy) // PROJECTION_POINTS)))  # every k-th row: deterministic
    groups = (
        [("points", keep)]
        if labels is None
        else [(f"label {value}", keep[labels[keep] == value]) for value in np.unique(labels[keep])[:20]]
    )
    traces = [
        dict(
            type="scatter",
            x=np.round(xy[rows, 0], 4),
            y=np.round(xy[rows, 1], 4),
            mode="markers",
            name=esc(name),
            marker=dict(size=4, opacity=0.7, color=figures.run_color(i)),
        )
        for i, (name, rows) in enumerate(groups)
    ]
    shown = f"{len(keep):,} of {len(xy):,} points" if len(keep) < len(xy) else f"{len(xy):,} points"
    return go.Figure(
        dict(
            data=traces,
            layout=dict(
                template=figures.TEMPLATE,
                height=420,
                title=dict(text=f"{esc(run.name)}, step {step}<br><sup>{shown}</sup>", x=0, xanchor="left"),
                xaxis=dict(title=dict(text="PC 1"), zeroline=False),
                yaxis=dict(title=dict(text="PC 2"), zeroline=False, scaleanchor="x"),
                legend=chart_style.legend_right(),
                margin=dict(l=50, r=20, t=60, b=40),
                hovermode="closest",
            ),
        )
    )


def _ablation(datas, ids) -> str:
    table = ablation(datas)
    from .crossmodal_figures import sample_grid_figure

    grids = "".join(
        figure_html(
            sample_grid_figure(d.generated, f"{d.name}: generated samples (row = digit asked for)"),
            "samples",
            d.name,
            *ids,
        )
        for d in datas
        if d.generated is not None
    )
    if not np.isfinite(table["lambda"]).any() and not grids:  # no run has a λ: nothing to compare
        return ""
    figure = figure_html(compare.ablation_figure(table), "ablation", *ids) if np.isfinite(table["lambda"]).any() else ""
    return (
        f"<p class='answer'>{esc(compare.ablation_sentence(table))}</p>"
        + figure
        + table_html(table)
        + (f"<h3>Generated samples</h3><p>{esc(GRID_NOTE)}</p><div class='grid'>{grids}</div>" if grids else "")
    )


def _config(datas, ids) -> str:
    if len(datas) < 2:
        return ""  # one run: nothing to diff
    diff = compare.config_diff({d.name: d.config for d in datas})
    if diff.empty:
        return "<p>The configs do not differ.</p>"
    return table_html(diff.T.rename_axis("run"), index=True)  # one row per run: no run is cut off the side


def _verdicts(datas, ids) -> str:
    if not any(d.summary for d in datas):
        return ""
    cards, judged = [], latest_verdicts(datas)
    for d in datas:
        s = d.summary
        if not s:
            cards.append(f"<div class='card'><h3>{esc(d.name)}</h3><p>No snapshot yet.</p></div>")
            continue
        measures = "".join(
            f"<li>{esc(k.replace('_', ' '))}: {esc(fmt(s[k]))}</li>"
            for k in ("alignment", "uniformity", "effective_rank", "knn_accuracy")
            if k in s
        )
        v = judged.get(d.name) or s  # as the Collapse page judges it; the snapshot alone without a run table
        tips = "".join(f"<li>{esc(t)}</li>" for t in (v.get("suggestions") or []))
        cards.append(
            f"<div class='card'><h3>{esc(d.name)} <small>step {esc(d.summary_step)}</small></h3>"
            f"<p class='verdict'>{esc(str(v.get('verdict', '')).replace('_', ' '))}</p>"
            f"<p>{esc(v.get('explanation', ''))}</p>"
            f"<ul>{measures}</ul>" + (f"<p>What to try:</p><ul>{tips}</ul>" if tips else "") + "</div>"
        )
    return "".join(cards)


def latest_verdicts(datas: list[RunData]) -> dict[str, dict]:
    """run -> the verdict at its latest snapshot as the Collapse page shows it (advice.judged: the ladder over
    the run's history and what to try from its alarms, fitted to its config)."""
    from ..judge.advice import RunContext
    from ..judge.judgement import judged

    found = run_alarms(datas)
    out = {
        d.name: judged(d.snapshots, d.summary_step, found.get(d.name, []), RunContext(d.config, d.metrics))
        for d in datas
        if d.snapshots is not None and d.summary_step is not None
    }
    return {name: v for name, v in out.items() if v is not None}


def run_alarms(datas: list[RunData]) -> dict[str, list]:
    """run -> trend alarms over its snapshot table, with suggestions fitted to its config and metrics."""
    from ..judge.advice import RunContext
    from ..judge.judgement import findings

    return {
        d.name: findings(d.snapshots, context=RunContext(d.config, d.metrics))
        for d in datas
        if d.snapshots is not None and len(d.snapshots)
    }


def alarm_timeline(datas: list[RunData]) -> go.Figure:
    """The alarm timeline of these runs (diagnostics.draw.figures.alarm_timeline_figure) with their config events."""
    from ..judge.advice import RunContext, config_events
    from . import figures

    found = run_alarms(datas)
    events = {d.name: config_events(RunContext(d.config, d.metrics)) for d in datas if d.name in found}
    last = {d.name: int(d.snapshots["step"].max()) for d in datas if d.name in found}
    end = {d.name: int(d.metrics["step"].max()) for d in datas if d.name in found and len(d.metrics)}
    return figures.alarm_timeline_figure(found, events, last, end)


def _alarms(datas, ids) -> str:
    found = run_alarms(datas)
    if not found:  # no snapshots to watch: the section is left out
        return ""
    rows = [
        {
            "run": run,
            "kind": a.kind,
            "severity": a.severity,
            "onset": a.step_started,
            "detected": a.step_detected,
            "message": a.message,
            "what to try": a.suggestion,
        }
        for run, alarms in found.items()
        for a in alarms
    ]
    table = table_html(pd.DataFrame(rows)) if rows else "<p>No alarms: no sign of a slide towards collapse.</p>"
    return figure_html(alarm_timeline(datas), "alarms", *ids) + table


def _notes(datas, ids) -> str:
    if not any(d.notes.strip() for d in datas):
        return ""
    return "".join(
        f"<div class='card'><h3>{esc(d.name)}</h3>"
        + (f"<pre class='notes'>{esc(d.notes)}</pre>" if d.notes.strip() else "<p><em>No notes.</em></p>")
        + "</div>"
        for d in datas
    )


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;color:#1f2328;
padding:0 1rem}h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .6rem;
text-align:left;vertical-align:top}thead th{background:#f6f8fa}table{display:block;overflow-x:auto;max-width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:.5rem}.grid>*{min-width:0}
.plotly-graph-div{max-width:100%}.card{border:1px solid #d0d7de;
border-radius:6px;padding:.5rem 1rem;margin:.6rem 0}.verdict{font-weight:600}.answer{font-size:1.1rem;
background:#f6f8fa;padding:.6rem 1rem;border-left:4px solid #0969da}.notes{white-space:pre-wrap;
font-family:inherit}.error{color:#cf222e}small{color:#57606a;font-weight:normal}
"""


def build_report(
    run_paths_or_runs,
    sections: Iterable[str] | None = None,
    *,
    metrics: Iterable[str] | None = None,
    smoothing: float = 0.0,
    title: str = "ContrastScope report",
    compute: bool = True,
) -> str:
    """The report as one HTML string. Runs: Run objects, RunData, or paths (local or fsspec URLs).
    compute=False (from a page): snapshots whose record is not written yet are left out, never computed."""
    sections = list(SECTIONS if sections is None else sections)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"sections: unknown {unknown}; choose from {list(SECTIONS)}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing: must be in [0, 1), got {smoothing}")
    datas = [
        _as_data(r, need_snapshots=bool(set(SNAPSHOT_SECTIONS) & set(sections)), compute=compute)
        for r in run_paths_or_runs
    ]
    if not datas:
        raise ValueError("run_paths_or_runs: give at least one run")
    ids = tuple(d.name for d in datas)
    chart_style.use_run_names(root_run_names(datas))  # each run the colour the dashboard gives it
    builders = {
        "overview": lambda: _overview(datas, ids),
        "metrics": lambda: _metrics(datas, ids, metrics, smoothing),
        "geometry": lambda: _geometry(datas, ids),
        "similarity": lambda: _similarity(datas, ids),
        "spectra": lambda: _spectra(datas, ids),
        "projections": lambda: _projections(datas, ids, compute),
        "ablation": lambda: _ablation(datas, ids),
        "config": lambda: _config(datas, ids),
        "verdicts": lambda: _verdicts(datas, ids),
        "alarms": lambda: _alarms(datas, ids),
        "notes": lambda: _notes(datas, ids),
    }
    built = {s: builders[s]() for s in SECTIONS if s in sections}  # "" when a section has nothing to show
    body = "".join(
        f"<section id='{s}'><h2>{esc(SECTION_TITLES[s])}</h2>{html_}</section>" for s, html_ in built.items() if html_
    )
    plotly_js = ""
    if "plotly-graph-div" in body:
        from plotly.offline import get_plotlyjs

        # auto-fill (not auto-fit) above keeps a grid's columns fixed while its charts are parsed one by one, so
        # the first is not drawn full width; the resize on load fits any chart to its cell all the same.
        plotly_js = (
            f"<script type='text/javascript'>{get_plotlyjs()}</script><script>window.addEventListener("
            "'load',()=>document.querySelectorAll('.js-plotly-plot').forEach(g=>Plotly.Plots.resize(g)))"
            "</script>"
        )
    run_list = ", ".join(esc(n) for n in ids)
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style>"
        f"{plotly_js}</head><body><h1>{esc(title)}</h1><p>Runs: {run_list}</p>{body}</body></html>\n"
    )


def root_run_names(datas: list[RunData]) -> list[str]:
    """The names of every run under the roots of these runs (local roots; the given runs where a root cannot
    be listed): the dashboard resolves colour collisions over its whole root, so the report does the same."""
    names = {d.name for d in datas}
    for root in {d.run.storage.root for d in datas if d.run is not None and not d.run.storage.url}:
        try:
            names |= {r.name for r in list_runs(root)}
        except OSError:
            pass
    return sorted(names)


def _as_data(run, need_snapshots: bool, compute: bool = True) -> RunData:
    if isinstance(run, RunData):
        return run
    if not isinstance(run, Run):
        run = open_run(os.fspath(run))
    return collect(run, with_snapshots=need_snapshots, compute=compute)


# -- command line ---------------------------------------------------------------------------------------
def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or names with --root)")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write ('-' for stdout)")
    parser.add_argument("--root", help="runs root; RUN arguments are then run names inside it")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, in any order; default all: {','.join(SECTIONS)}",
    )
    parser.add_argument("--metrics", help="comma-separated metric names to plot (default: the main losses and evals)")
    parser.add_argument("--smoothing", type=float, default=0.0, help="EMA weight in [0, 1), as in TensorBoard")
    parser.add_argument("--title", default="ContrastScope report")


def run_report(args: argparse.Namespace) -> int:
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    runs = [open_run(r, root=args.root) if args.root else open_run(r) for r in args.runs]
    text = build_report(runs, sections, metrics=metrics, smoothing=args.smoothing, title=args.title)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"wrote {args.output} ({len(text.encode('utf-8')) / 1e6:.1f} MB, {len(runs)} runs)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diagnostics.draw.report", description=__doc__.splitlines()[0])
    add_report_arguments(parser)
    return run_report(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
