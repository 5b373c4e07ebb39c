"""Alarms and config events in figures: vertical markers on step charts, and the alarm timeline.

Config events that fall close together (a warm-up end and `contrastive.negatives_off_step` a few steps
apart) would print their labels on top of each other; `label_levels` staggers them into rows from an
estimate of each label's width, and every label's full text is in its hover.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .chart_style import TEMPLATE, legend_name, run_colours

SEVERITY_COLOR = {"critical": "#cf222e", "warning": "#bf8700", "info": "#8c959f"}
EVENT_COLOR = "#57606a"
EVENT_FONT = 9  # px
CHAR_PX = 0.62 * EVENT_FONT  # Plotly's default font (Open Sans) averages ~0.55 em a character; a margin on top
PLOT_PX = 380  # the narrowest plot area an alarm chart gets (Compare and Collapse at 1100 px, sidebar
#                         open: ~400 px): labels that clear each other there clear at every wider width
MAX_LEVELS = 4  # rows of labels; a fifth crowded label shares the least crowded row (its hover is full)
LEVEL_UNITS = 0.34  # one label row, in timeline rows (a timeline row is ~34 px, a label ~11 px)


def _text(value) -> str:
    """A string from a run (kind, config key, message) as plain text: plotly parses a little HTML."""
    return html.escape(str(value), quote=False)


def label_spans(
    steps: Sequence[float], texts: Sequence[str], lo: float, hi: float, plot_px: float = PLOT_PX
) -> list[tuple[float, float, str]]:
    """Per label: (left, right) in steps of its estimated box and the side it is written on ("right" of its
    tick, or "left" in the right third of the axis so it is not cut at the edge)."""
    per_px = ((hi - lo) or 1.0) / plot_px
    spans = []
    for step, text in zip(steps, texts):
        width = (len(html.unescape(text)) * CHAR_PX + 6) * per_px
        side = "left" if step > lo + 2 / 3 * (hi - lo) else "right"
        spans.append((step - width, step, side) if side == "left" else (step, step + width, side))
    return spans


def label_levels(spans: Sequence[tuple[float, float, str]]) -> list[int]:
    """The row (0 nearest the axis) of each label: the lowest row where its box overlaps no earlier label's."""
    rows: list[list[tuple[float, float]]] = [[] for _ in range(MAX_LEVELS)]
    levels = []
    for left, right, _ in spans:
        clashes = [sum(left < r and l < right for l, r in row) for row in rows]
        level = clashes.index(0) if 0 in clashes else clashes.index(min(clashes))
        rows[level].append((left, right))
        levels.append(level)
    return levels


def marker_number(i: int) -> str:
    """①, ②, … ⑳, then 21, 22: the label of the i-th marker (0-based) on a step chart."""
    return chr(0x2460 + i) if i < 20 else str(i + 1)


def add_markers(figs, alarms: Mapping[str, Sequence] | None = None, events: Mapping[str, Sequence] | None = None):
    """Vertical lines on step charts: each run's alarm onsets (dashed, coloured by severity; info left out)
    and config events (dotted grey). Takes one figure or a list (a page's panels); returns the same.

    The lines are drawn in every panel, but named once: a number (①, ②…) at the top of each line in the
    first panel only, and one key naming the run, the step and what happened (`layout.meta["markers"]`,
    which chart_style.step_grid writes as the band above its panels). Labels in all ten Live panels ran into
    each other and the curves, and named no run. Several runs' lines at one step are drawn once."""
    many = isinstance(figs, (list, tuple))
    # One line and one number per step: six alarms of one run at step 300 are one line, their kinds listed in
    # the key (numbered apart, nine labels at one step stacked into a column over the curves).
    found: dict[int, dict] = {}  # step -> {"rank", "colour", "dash", "whats", "runs"}
    rank = {"critical": 0, "warning": 1, "event": 2}

    def mark(step: int, what: str, kind: str, run: str) -> None:
        m = found.setdefault(int(step), dict(rank=9, whats=[], runs=[]))
        if rank[kind] < m["rank"]:
            m.update(
                rank=rank[kind], colour=SEVERITY_COLOR.get(kind, EVENT_COLOR), dash="dot" if kind == "event" else "dash"
            )
        m["whats"].append(what)
        m["runs"].append(run)

    for run, alarm_list in (alarms or {}).items():
        for a in alarm_list:
            if a.severity != "info":
                mark(a.step_started, f"{a.kind.replace('_', ' ')} ({a.severity})", a.severity, run)
    for run, event_list in (events or {}).items():
        for e in event_list:
            mark(e.step, str(e.key), "event", run)
    markers = sorted(found.items())
    shapes = [
        dict(
            type="line",
            xref="x",
            yref="paper",
            x0=step,
            x1=step,
            y0=0,
            y1=1,
            line=dict(color=m["colour"], dash=m["dash"], width=1.5 if m["dash"] == "dash" else 1),
        )
        for step, m in markers
    ]
    numbers = [marker_number(i) for i in range(len(markers))]
    figs_list = [f for f in (figs if many else [figs]) if len(f.data)]
    xs = np.concatenate(
        [np.asarray(t.x if t.x is not None else [], dtype=float).ravel() for f in figs_list for t in f.data]
        + [np.asarray([s for s, _ in markers], float)]
    )
    xs = xs[np.isfinite(xs)]
    # A number is ~1 em wide at 11 px; the first panel of a two-column grid at 1100 px is ~300 px wide.
    spans = label_spans(
        [s for s, _ in markers], numbers, *((xs.min(), xs.max()) if len(xs) else (0, 1)), plot_px=NUMBER_PLOT_PX
    )
    notes = [
        dict(
            x=step,
            y=1,
            xref="x",
            yref="paper",
            text=number,
            showarrow=False,
            yshift=-NUMBER_ROW_PX * level,
            xanchor="left",
            yanchor="top",
            font=dict(size=11, color=m["colour"]),
            hovertext=_text(", ".join(dict.fromkeys(m["whats"]))),
        )
        for (step, m), number, level in zip(markers, numbers, label_levels(spans))
    ]
    key = marker_key(markers, numbers)
    for i, fig in enumerate(figs_list):
        if markers:
            fig.update_layout(
                shapes=list(fig.layout.shapes) + shapes,
                annotations=list(fig.layout.annotations) + (notes if i == 0 else []),
                meta={**(fig.layout.meta or {}), "markers": key} if i == 0 else fig.layout.meta,
            )
    return figs


NUMBER_PLOT_PX = 300 / 2.5  # label_spans sizes 9 px characters; a circled number at 11 px is ~2.5 of them
NUMBER_ROW_PX = 17  # one row of numbers: 11 px type and its line box (~16 px)
# The band line's "what" part: "④ step 300 · " (13) + 48 + " +4 more" (8) + " · " + a 28-character run name and
# " (+1 runs)" stays under ~110 characters, what a 12 px line holds across Live's grid at 1100 px (~750 px).
KEY_WHAT_CHARS = 48


def marker_key(markers, numbers: Sequence[str]) -> list[str]:
    """One line per marked step: "① step 30 · contrastive.warmup_steps · healthy-infonce-tau0.1 (+2 runs)",
    plain text escaped for Plotly, the run cut to a legend's length."""
    lines = []
    for (step, m), number in zip(markers, numbers):
        runs = list(dict.fromkeys(m["runs"]))
        who = legend_name(_text(runs[0])) + (f" (+{len(runs) - 1} runs)" if len(runs) > 1 else "")
        whats = list(dict.fromkeys(m["whats"]))
        shown = [w for k, w in enumerate(whats) if len(", ".join(whats[: k + 1])) <= KEY_WHAT_CHARS] or whats[:1]
        rest = f" +{len(whats) - len(shown)} more" if len(whats) > len(shown) else ""
        whats = ", ".join(_text(w) for w in shown) + rest
        lines.append(f"<span style='color:{m['colour']}'>{number}</span> step {step} · {whats} · {who}")
    return lines


def alarm_timeline_figure(
    alarms: Mapping[str, Sequence],
    events: Mapping[str, Sequence] | None = None,
    last_step: Mapping[str, int] | None = None,
    run_end: Mapping[str, int] | None = None,
) -> go.Figure:
    """One row per alarm kind of each run: a bar from the estimated onset to the detection (a diamond), then a
    thin line to the run's last snapshot while it lasts; config events as grey ticks on the run's own row,
    their keys written above them in staggered rows where they would overlap (the event in full in the
    hover). With several runs each run's rows sit under its name (a header in its colour across the plot),
    so the row labels stay short and the plot keeps its width. Hover shows the alarm's message as text.
    The x-axis spans step 0 to the last of `last_step` (each run's last snapshot) and `run_end` (its last
    logged step). Nothing to show: `layout.meta["empty"]` says so (chart_style.empty_reason)."""
    every = [s for found in alarms.values() for a in found for s in (a.step_started, a.step_detected)]
    every += [e.step for found in (events or {}).values() for e in found] + list((last_step or {}).values())
    every += list((run_end or {}).values())  # each run's last logged step
    # The x-axis is the whole run, from step 0 to its last step: spanning only the events (30–100 of a 600-step
    # run) it read as if the run ended at 100, and cut the last label.
    lo, hi = min([0, *every]), max(every, default=1)
    colours = run_colours(alarms)
    traces, rows, headers, y = [], [], [], 0.0  # rows: (y, label); y grows downwards (the axis is reversed)
    for run, found in alarms.items():
        run_events = list((events or {}).get(run, ()))
        if len(alarms) > 1 and (found or run_events):
            headers.append(
                dict(
                    x=0,
                    xref="paper",
                    xanchor="left",
                    y=y - 0.15,
                    yref="y",
                    yanchor="middle",
                    text=legend_name(_text(run), 60),
                    hovertext=_text(run),
                    showarrow=False,
                    font=dict(size=12, color=colours[run]),
                )
            )
            y += 0.75
        for a in found:
            rows.append((y, a.kind.replace("_", " ")))
            color = SEVERITY_COLOR.get(a.severity, EVENT_COLOR)
            end = (last_step or {}).get(run, a.step_detected)
            hover = _text(f"{run} · {a.severity}: {a.message}")
            common = dict(type="scatter", name=a.severity, legendgroup=a.severity, showlegend=False)
            traces.append(
                dict(
                    common,
                    x=[a.step_started, a.step_detected],
                    y=[y, y],
                    mode="lines",
                    line=dict(color=color, width=10),
                    hovertext=[hover, hover],
                    hoverinfo="text",
                )
            )
            traces.append(
                dict(
                    common,
                    x=[a.step_detected, max(end, a.step_detected)],
                    y=[y, y],
                    mode="lines",
                    line=dict(color=color, width=2),
                    hoverinfo="skip",
                )
            )
            traces.append(
                dict(
                    common,
                    x=[a.step_detected],
                    y=[y],
                    mode="markers",
                    hovertext=[hover],
                    hoverinfo="text",
                    marker=dict(symbol="diamond", size=12, color=color, line=dict(color="white", width=1)),
                )
            )
            y += 1
        if run_events:
            keys = [_text(e.key) for e in run_events]
            spans = label_spans([e.step for e in run_events], keys, lo, hi)
            levels = label_levels(spans)
            y += LEVEL_UNITS * max(levels) + (0.2 if found else 0)  # room above the ticks for the label rows
            rows.append((y, "config events"))
            hovers = [_text(e.text) for e in run_events]
            traces.append(
                dict(
                    type="scatter",
                    x=[e.step for e in run_events],
                    y=[y] * len(run_events),
                    mode="markers",
                    marker=dict(symbol="line-ns-open", size=16, color=EVENT_COLOR),
                    hovertext=hovers,
                    hoverinfo="text",
                    showlegend=False,
                    name="config events",
                )
            )
            for side in ("right", "left"):  # labels beside their tick, one row (level) above another
                at = [i for i, s in enumerate(spans) if s[2] == side]
                if at:
                    traces.append(
                        dict(
                            type="scatter",
                            x=[run_events[i].step for i in at],
                            y=[y - 0.45 - LEVEL_UNITS * levels[i] for i in at],
                            mode="text",
                            text=[keys[i] for i in at],
                            textposition=f"middle {side}",
                            hovertext=[hovers[i] for i in at],
                            hoverinfo="text",
                            cliponaxis=False,
                            showlegend=False,
                            name="config event labels",
                            meta="event labels",
                            textfont=dict(size=EVENT_FONT, color=EVENT_COLOR),
                        )
                    )
            y += 1
    # The colours are explained in the title's second line, not a legend: the plot keeps the width.
    key = " · ".join(
        f"<span style='color:{SEVERITY_COLOR[s]}'>{s}</span>"
        for s in SEVERITY_COLOR
        if any(t.get("name") == s for t in traces)
    )
    title = "Alarms: estimated onset → detection (◆)" + (
        f"<br><sup>{key} · grey ticks: config events</sup>" if key else ""
    )
    units = max(y, 1.0)
    top = -0.9 if not headers else -0.6
    fig = go.Figure(
        dict(
            data=traces,
            layout=dict(
                template=TEMPLATE,
                title=dict(text=title, x=0, xanchor="left"),
                showlegend=False,
                annotations=headers,
                height=int(150 + 34 * units),
                hovermode="closest",
                margin=dict(l=60, r=20, t=70, b=50),
                meta=None if any(alarms.values()) or any((events or {}).values()) else {"empty": empty_reason(alarms)},
                xaxis=dict(title=dict(text="training step"), range=[lo, hi + 0.02 * ((hi - lo) or 1)]),
                yaxis=dict(
                    tickmode="array",
                    tickvals=[r[0] for r in rows],
                    ticktext=[r[1] for r in rows],
                    zeroline=False,
                    showgrid=False,
                    **(dict(range=[units - 0.5, top]) if rows else dict(autorange="reversed")),
                ),
            ),
        )
    )
    if not rows:
        fig.add_annotation(
            text="No alarms and no config events.", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return fig


def empty_reason(alarms: Mapping[str, Sequence]) -> str:
    """What an alarm timeline with nothing on it says instead of an empty chart."""
    runs = ", ".join(str(r) for r in alarms) or "these runs"
    return (
        f"No alarms and no config events for {runs}: the trend detectors found nothing to flag, and the "
        "config switches nothing on or off during training."
    )
