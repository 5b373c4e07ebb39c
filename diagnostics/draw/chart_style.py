"""How every chart looks: one colour per run wherever it is drawn, short legend labels, one legend and one
linked x-axis for a page's step charts.

A run's colour comes from its name (a hash into a fixed palette), not from its position in the selection,
so "healthy-tau0.1" is the same colour on Live, Geometry, Compare and in the report, with two runs selected
or twelve. Two runs of one page whose names hash to the same slot are told apart deterministically: the
one that sorts first (by slot, then name) keeps the slot, the other takes the next free one.
"""

from __future__ import annotations

import functools
import hashlib
import html
import math
import re
from typing import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
# d3's category10 and two more that stay apart from it: hues a reader tells apart at a glance, on white and
# on Streamlit's dark theme. Hashing 6 names into 12 slots collides often (birthday bound: 78%); the
# collisions are resolved per page below, so colours stay distinct and mostly stable.
PALETTE = (
    "#1F77B4",
    "#FF7F0E",
    "#2CA02C",
    "#D62728",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#1616A7",
    "#00A08B",
)
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
DASH_WORDS = {
    "solid": "solid",
    "dash": "dashed",
    "dot": "dotted",
    "dashdot": "dash-dot",
    "longdash": "long dash",
    "longdashdot": "long dash-dot",
}
LEGEND_CHARS = 28  # longer run names are cut with "…" in legends; hovers carry the full name


def _raw(name: str) -> str:
    """The run name itself: figures receive names already escaped for Plotly (dashboard.text.plot), the
    report passes them the same way; unescaping makes "a&b" and "a&amp;b" one colour."""
    return html.unescape(str(name))


def home_slot(name: str) -> int:
    digest = hashlib.sha256(_raw(name).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % len(PALETTE)


_universe: tuple[str, ...] = ()


def use_run_names(names: Iterable[str]) -> None:
    """Resolve colour collisions over these runs (the dashboard passes every run under its root), so a run's
    colour does not change with which runs a page shows, only when runs are added or removed."""
    global _universe
    _universe = tuple(sorted({_raw(n) for n in names}))


@functools.lru_cache(maxsize=64)
def _assign(names: tuple[str, ...]) -> dict[str, str]:
    taken: set[int] = set()
    out = {}
    for name in sorted(names, key=lambda n: (home_slot(n), n)):
        slot = home_slot(name)
        if len(taken) < len(PALETTE):  # more runs than colours: later ones share
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        out[name] = PALETTE[slot]
    return out


def run_colours(names: Iterable[str]) -> dict[str, str]:
    """{name: colour} for the runs drawn together; each keeps its home colour unless it collides with another
    run of the page or of `use_run_names` (the one sorting first by slot, then name, keeps the slot)."""
    names = list(dict.fromkeys(names))
    assigned = _assign(tuple(sorted(set(_universe) | {_raw(n) for n in names})))
    return {n: assigned[_raw(n)] for n in names}


def run_colour(name: str) -> str:
    """A run's home colour, when it is drawn alone."""
    return PALETTE[home_slot(name)]


def legend_name(name: str, limit: int = LEGEND_CHARS) -> str:
    """`name` (escaped for Plotly) cut to `limit` characters for a legend, still escaped."""
    raw = _raw(name)
    return html.escape(raw if len(raw) <= limit else raw[: limit - 1] + "…", quote=False)


def title_name(name: str, width: int = LEGEND_CHARS, lines: int = 2) -> str:
    """`name` (escaped for Plotly) for the title of a narrow chart: broken after a "-", "_" or "." into up
    to `lines` lines of `width` characters ("<br>" between), cut with "…" only past that. A title cut at 32
    characters hid what told runs apart ("complete-collapse-negatives-rem…")."""
    raw, out = _raw(name), []
    while raw and len(out) < lines:
        if len(raw) <= width or len(out) == lines - 1:
            out.append(raw if len(raw) <= width else raw[: width - 1] + "…")
            break
        cut = max((m.end() for m in re.finditer(r"[-_.]", raw[:width])), default=width)
        out.append(raw[:cut])
        raw = raw[cut:]
    return "<br>".join(html.escape(line, quote=False) for line in out)


def legend_below(rows: int = 1) -> dict:
    """A horizontal legend in the bottom margin, under the x-axis title (never over it)."""
    return dict(
        orientation="h",
        yref="container",
        y=0,
        yanchor="bottom",
        x=0,
        xanchor="left",
        font=dict(size=11),
        entrywidth=0,
        tracegroupgap=0,
    )


def legend_right() -> dict:
    """A vertical legend right of the plot: Plotly widens the right margin for it, so it never covers a title
    or an axis, and short labels keep it narrow."""
    return dict(
        orientation="v",
        x=1.02,
        xanchor="left",
        y=1,
        yanchor="top",
        font=dict(size=11),
        tracegroupgap=2,
        itemsizing="constant",
    )


def dash_key(quantities: Sequence[str]) -> str:
    """'solid: total · dashed: contrastive': which line style is which quantity, for a panel title."""
    if len(quantities) < 2:
        return ""
    return " · ".join(f"{DASH_WORDS[DASHES[q % len(DASHES)]]}: {name}" for q, name in enumerate(quantities))


def legend_traces(colours: dict[str, str]) -> list[dict]:
    """One legend entry per run (no data): clicking it hides every trace of that run (legendgroup)."""
    return [
        dict(
            type="scatter",
            x=[None],
            y=[None],
            mode="lines",
            name=legend_name(run),
            legendgroup=run,
            showlegend=True,
            line=dict(color=colour, width=3),
            hoverinfo="skip",
        )
        for run, colour in colours.items()
    ]


def step_grid(
    panels: Sequence[go.Figure],
    columns: int = 2,
    row_height: int = 300,
    x_title: str = "training step",
    title: str = "",
    legend: bool = True,
) -> go.Figure:
    """A page's step charts as one figure: subplots whose x-axes are linked (zoom one, all follow), one
    shared legend of runs, hover "x unified" in every panel. Each panel is a figure built by
    diagnostics.draw.figures (its title becomes the panel title, its y-axis title and type carry over); every
    trace keeps its name and gets meta.panel = the panel title, so a test can read panels back.
    Panels with no traces are skipped."""
    panels = [p for p in panels if any(t.meta != "legend" for t in p.data)]
    columns = max(1, min(columns, len(panels) or 1))
    rows = max(1, math.ceil(len(panels) / columns))
    titles = [p.layout.title.text or "" for p in panels]
    shown = [wrap_title(t) for t in titles]  # a panel is ~250 px wide at 1100 px: long titles ran into the next
    extra = max((t.count("<br>") - 1 for t in shown), default=0)  # lines beyond the usual title + key
    gap_px = 95 + TITLE_LINE_PX * max(extra, 0)  # the panel title (two lines) and the x tick labels between rows
    height = rows * row_height + (rows - 1) * gap_px + 90
    fig = make_subplots(
        rows=rows,
        cols=columns,
        shared_xaxes="all",
        subplot_titles=shown,
        vertical_spacing=gap_px / height if rows > 1 else 0.0,
        horizontal_spacing=0.1,
    )
    colours: dict[str, str] = {}
    for i, panel in enumerate(panels):
        row, col = i // columns + 1, i % columns + 1
        for trace in panel.data:
            if trace.meta == "legend":
                colours.setdefault(trace.legendgroup, trace.line.color)
                continue
            trace = trace.to_plotly_json()
            trace.update(showlegend=False, meta={"panel": titles[i]})
            fig.add_trace(trace, row=row, col=col)
        y = panel.layout.yaxis
        fig.update_yaxes(
            title_text=y.title.text,
            type=y.type,
            dtick=y.dtick,
            rangemode=y.rangemode,
            range=y.range,
            tickformat=y.tickformat,
            hoverformat=y.hoverformat,
            title_font_size=12,
            row=row,
            col=col,
        )
        for shape in panel.layout.shapes or ():  # reference lines (d, 1/√d), alarm onsets
            fig.add_shape(_in_panel(shape.to_plotly_json()), row=row, col=col)
        for note in panel.layout.annotations or ():
            fig.add_annotation(_in_panel(note.to_plotly_json()), row=row, col=col)
    fig.update_xaxes(showspikes=True, spikemode="across", spikethickness=1, spikedash="dot")
    for col in range(1, columns + 1):  # the x title once per column, under its bottom panel
        bottom = max(r for r in range(1, rows + 1) if (r - 1) * columns + col <= len(panels)) if panels else 1
        fig.update_xaxes(title_text=x_title, row=bottom, col=col)
        fig.update_xaxes(showticklabels=True, row=bottom, col=col)
    fig.update_xaxes(showticklabels=True)  # every panel keeps its step ticks (they are far apart on a page)
    fig.update_annotations(font_size=13)
    if legend and colours:
        for trace in legend_traces(colours):
            fig.add_trace(trace, row=1, col=1)
    band = [line for p in panels for line in ((p.layout.meta or {}).get("markers") or [])]
    if len(band) > BAND_LINES:  # the rest are still numbered on the lines, their text in the numbers' hover
        band = band[: BAND_LINES - 1] + [f"… and {len(band) - BAND_LINES + 1} more (hover the numbers)"]
    top = (60 if title else 40) + BAND_LINE_PX * len(band) + TITLE_LINE_PX * max(extra, 0)
    text = "<br>".join(([f"<b>{title}</b>"] if title else []) + band)
    fig.update_layout(
        template=TEMPLATE,
        height=height + BAND_LINE_PX * len(band),
        hovermode="x unified",
        legend=legend_right(),
        uirevision="step-grid",  # a refresh keeps the zoom and the hidden runs
        showlegend=legend and bool(colours),
        margin=dict(l=60, r=20, t=top, b=50),
        title=dict(
            text=text,
            x=0,
            xanchor="left",
            y=1,
            yref="container",
            yanchor="top",
            pad=dict(t=8),
            font=dict(size=12 if band else 17),
        )
        if text
        else None,
    )
    return fig


# A panel title wraps at TITLE_CHARS (13 px type: ~7 px a character, 30 of them ~210 px, what a panel of a
# two-column grid holds at 1100 px with the sidebar open); its key line (<sup>, 10 px) at 12 more.
TITLE_CHARS = 30
TITLE_LINE_PX = 15


def wrap_words(text: str, width: int, sep: str) -> list[str]:
    """`text` split at `sep` into lines of at most `width` visible characters (a longer word keeps its line)."""
    lines: list[str] = []
    for word in text.split(sep):
        if lines and len(html.unescape(re.sub("<[^>]+>", "", lines[-1] + sep + word))) <= width:
            lines[-1] += sep + word
        else:
            lines.append(word)
    return lines


def wrap_title(title: str, chars: int = TITLE_CHARS, key_chars: int | None = None) -> str:
    """A title broken into lines of `chars` at spaces, its "<br><sup>key</sup>" line at " · " into lines of
    `key_chars` (default 12 more: the key's type is smaller)."""
    main, _, key = title.partition("<br>")
    out = "<br>".join(wrap_words(main, chars, " "))
    if key.startswith("<sup>") and key.endswith("</sup>"):
        out += "<br>" + "<br>".join(
            f"<sup>{line}</sup>" for line in wrap_words(key[5:-6], key_chars or chars + 12, " · ")
        )
    elif key:
        out += "<br>" + key
    return out


def narrow(fig: go.Figure, chars: int = TITLE_CHARS) -> go.Figure:
    """`fig` for a half-width cell: its title wrapped (wrap_title at `chars`), the top margin grown by a line
    for each line it gained, the legend below the plot."""
    text = fig.layout.title.text or ""
    wrapped = wrap_title(text, chars, key_chars=chars)  # beside a legend the key gets no wider lines
    gained = wrapped.count("<br>") - text.count("<br>")
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 60
    bottom = fig.layout.margin.b if fig.layout.margin.b is not None else 50
    # the legend under the x-axis title: beside the plot it took half the cell and ran into the wrapped title
    return fig.update_layout(
        title_text=wrapped,
        margin_t=top + 20 * gained,  # 17 px type: a 20 px line
        legend=legend_below(),
        margin_b=bottom + 30,
        margin_r=20,
    )


# The band of markers (config events, alarm onsets) above a page's step charts: one line each, 16 px a line at
# 12 px type; more than BAND_LINES (a root of eight runs with two events each) fold into one "… more" line.
BAND_LINES = 10
BAND_LINE_PX = 16


def _in_panel(item: dict) -> dict:
    """A shape or annotation of a single figure, placed in one panel: "paper" (the whole plot) becomes that
    panel's axis domain, which make_subplots then names for the panel."""
    for ref in ("xref", "yref"):
        if item.get(ref) == "paper":
            item[ref] = ref[0] + " domain"
    return item


def panel_traces(fig: go.Figure) -> dict[str, dict[str, int]]:
    """{panel title: {trace name: number of points}} of a step_grid figure (legend entries left out)."""
    out: dict[str, dict[str, int]] = {}
    for trace in fig.data:
        if isinstance(trace.meta, dict) and "panel" in trace.meta:
            out.setdefault(trace.meta["panel"], {})[trace.name] = len(trace.x if trace.x is not None else ())
    return out


# -- the axis rule: every value axis a figure draws goes through `value_axis` ---------------------------
# A log axis over less than a decade has at most one power of ten in it: with dtick=1 Plotly drew no tick at
# all (Live's losses 2.2–6.1: range [0.34, 0.79] in log units, dtick 1). Log only when the data span more than
# LOG_MIN_SPAN (one decade); ticks at powers of ten only from two decades, where there are at least two.
LOG_MIN_SPAN = 10.0
LOG_DECADE_TICKS = 100.0
# A series flatter than this, relative to its size, is drawn as a constant: autorange gives a constant 1e-3 a
# range of ±1 around it, and rangemode "nonnegative" then pins it to the x-axis of a 0–1 plot (Live's lr).
FLAT = 1e-6  # float32 noise: a τ of 0.1 logged as float32 reads 0.10000000149 (1.5e-8 relative)
CONSTANT_PAD = 0.5  # a constant v is drawn in the middle of [v − 0.5|v|, v + 0.5|v|] (ticks at 0.5v steps)


def finite_values(traces: Iterable) -> np.ndarray:
    """Every finite y of the data traces (dicts or plotly traces; legend and marker traces left out)."""
    out = []
    for t in traces:
        get = t.get if isinstance(t, dict) else (lambda k, t=t: getattr(t, k, None))
        if get("meta") in ("legend", "marker") or get("y") is None:
            continue
        try:
            y = np.asarray(get("y"), dtype=float).ravel()
        except (TypeError, ValueError):  # categories or text: not a value axis
            continue
        out.append(y[np.isfinite(y)])
    return np.concatenate(out) if out else np.zeros(0)


def value_axis(values, log: bool = False, lo: float | None = None, hi: float | None = None) -> dict:
    """The y-axis settings for `values`: log only over more than a decade, a constant series a range around its
    value, else a linear axis bounded by what the quantity cannot cross (`lo`, `hi`: τ ≥ 0, a fraction ≤ 1).
    Every result leaves Plotly at least two ticks inside the range (tests/test_chart_rules.py holds it)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return dict(type="linear")
    vmin, vmax = float(v.min()), float(v.max())
    if log and vmin > 0 and vmax / vmin > LOG_MIN_SPAN:
        return dict(type="log", dtick=1 if vmax / vmin >= LOG_DECADE_TICKS else "D2")
    if vmax - vmin <= FLAT * max(abs(vmin), abs(vmax)):
        pad = CONSTANT_PAD * abs(vmax) or 1.0
        low, high = vmax - pad, vmax + pad
        if lo is not None and low < lo:  # a constant at its bound (λ = 0) sits on the bound
            low, high = lo, max(high, lo + 2 * pad)
        if hi is not None and high > hi:
            low, high = min(low, hi - 2 * pad), hi
        return dict(type="linear", range=[low, high])
    if lo is not None and hi is not None:
        return dict(type="linear", range=[min(lo, vmin), max(hi, vmax)])
    if lo == 0 and vmin >= 0:
        return dict(type="linear", rangemode="nonnegative")
    return dict(type="linear")


def fit_value_axis(fig: go.Figure, log: bool | None = None) -> go.Figure:
    """`value_axis` applied to a single-axis figure built with plotly's own constructors (log: what was asked;
    None keeps the figure's own type as the request)."""
    asked = fig.layout.yaxis.type == "log" if log is None else log
    fig.update_yaxes(dtick=None, range=None, rangemode=None)
    fig.update_yaxes(**value_axis(finite_values(fig.data), log=asked))
    return fig


def empty_reason(fig: go.Figure) -> str | None:
    """Why `fig` has nothing to draw (its `layout.meta["empty"]`, or its title when no trace has a finite
    point), or None: the pages and the report write this sentence instead of drawing an empty chart."""
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    if meta.get("empty"):
        return str(meta["empty"])
    for t in fig.data:
        if getattr(t, "meta", None) in ("legend", "marker"):
            continue
        values = next((v for axis in ("z", "y", "x") if (v := getattr(t, axis, None)) is not None), None)
        if values is not None and finite_values([{"y": values}]).size:
            return None
    title = html.unescape(str(fig.layout.title.text or "this chart")).split("<br>")[0]
    return f"{title}: nothing to draw yet (no finite values logged for the runs shown)."
