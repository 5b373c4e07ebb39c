"""Reading Plotly figure JSON back in tests: a page's step charts are one figure of panels
(diagnostics.draw.chart_style.step_grid), each trace tagged meta.panel; legend-only and marker traces carry
meta "legend" / "marker" and no data."""

from __future__ import annotations

import base64
import math
import re

import numpy as np

from dashboard.text import plot
from diagnostics.draw.chart_style import legend_name


def is_data(trace: dict) -> bool:
    return trace.get("meta") not in ("legend", "marker")


def panels(spec: dict) -> list[dict]:
    """A figure spec split into one spec per panel ({"layout": {"title", "xaxis"}, "data"}); a figure without
    panels is returned whole (legend and marker traces dropped)."""
    layout = spec.get("layout", {})
    tagged = [t for t in spec["data"] if isinstance(t.get("meta"), dict) and "panel" in t["meta"]]
    if not tagged:
        return [{**spec, "data": [t for t in spec["data"] if is_data(t)]}]
    x_title = next(
        (
            a["title"]
            for k, a in sorted(layout.items())
            if k.startswith("xaxis") and isinstance(a, dict) and a.get("title", {}).get("text")
        ),
        {"text": ""},
    )
    out: dict[str, dict] = {}
    for trace in tagged:
        title = trace["meta"]["panel"]
        out.setdefault(title, {"layout": {"title": {"text": title}, "xaxis": {"title": x_title}}, "data": []})
        out[title]["data"].append(trace)
    return list(out.values())


# -- the chart rules (tests/test_chart_rules.py) ---------------------------------------------------------


def array(values) -> np.ndarray:
    """A trace coordinate as floats (a list, or a base64 typed array); text and None become NaN."""
    if values is None:
        return np.zeros(0)
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).astype(float)
    out = []
    for v in np.asarray(values, dtype=object).ravel():
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.asarray(out, dtype=float)


def axis_name(ref: str) -> str:
    """ "x2" -> "xaxis2"."""
    return ref[0] + "axis" + ref[1:]


def _ticks_in(lo: float, hi: float, axis: dict, log: bool) -> int:
    """How many ticks Plotly draws in [lo, hi] (data units) for the tick settings of `axis`."""
    if axis.get("tickmode") == "array" or axis.get("tickvals") is not None:
        vals = array(axis.get("tickvals"))
        vals = np.log10(vals[vals > 0]) if log else vals
        return int(((vals >= lo - 1e-12) & (vals <= hi + 1e-12)).sum())
    dtick = axis.get("dtick")
    if dtick is None:
        return 5 if hi > lo else 0  # auto ticks: Plotly always finds several in a range of positive width
    if log:
        if isinstance(dtick, str) and dtick.startswith("D"):
            return 5 if hi - lo > 1 else 0  # D1/D2 label 2, 5 (and every digit) inside each decade over one
        return int(math.floor(hi / float(dtick)) - math.ceil(lo / float(dtick)) + 1)
    return int(math.floor(hi / float(dtick)) - math.ceil(lo / float(dtick)) + 1)


def axis_problems(spec: dict) -> list[str]:
    """The chart rule for the axes of one figure spec (as Plotly JSON): every axis that shows data has at
    least two ticks over what it shows, and the data do not sit flat on an edge of an explicit range or of a
    range forced to start at zero (a constant lr drawn on the x-axis of a 0-1 plot)."""
    layout, problems = spec.get("layout", {}), []
    if (layout.get("meta") or {}).get("axes") == "arbitrary":  # a projection map: its coordinates mean nothing
        return []
    title = re.sub("<[^>]+>", "", str((layout.get("title") or {}).get("text", "")))[:60]
    shown: dict[str, list[np.ndarray]] = {}
    for t in spec["data"]:
        if not is_data(t) or t.get("type") in ("heatmap", "image"):
            continue
        for ref, coord in ((t.get("xaxis", "x"), "x"), (t.get("yaxis", "y"), "y")):
            v = array(t.get(coord))
            v = v[np.isfinite(v)]
            if v.size:
                shown.setdefault(axis_name(ref), []).append(v)
    for name, parts in shown.items():
        axis = layout.get(name) or {}
        if axis.get("visible") is False:
            continue
        v = np.concatenate(parts)
        log = axis.get("type") == "log"
        if log:
            v = v[v > 0]
            if not v.size:
                continue
            v = np.log10(v)
        lo, hi = float(v.min()), float(v.max())
        where = f"{title!r} {name}"
        if axis.get("showticklabels") is False:
            problems.append(f"{where}: tick labels hidden")
            continue
        explicit = axis.get("range") is not None and axis.get("autorange") not in (True, "reversed")
        if explicit:
            a, b = sorted(float(x) for x in axis["range"])
        elif hi > lo:
            pad = 0.05 * (hi - lo)
            a, b = lo - pad, hi + pad
            if axis.get("rangemode") in ("nonnegative", "tozero") and not log:
                a = 0.0 if axis.get("rangemode") == "tozero" or a < 0 <= lo else a
        else:  # a constant under autorange: ±1 around it, pinned at 0 by a nonnegative range
            if not log and axis.get("rangemode") in ("nonnegative", "tozero") and abs(lo) < 0.5:
                problems.append(f"{where}: a constant {lo:g} drawn on the edge of an autoranged 0-based axis")
                continue
            a, b = lo - 1, hi + 1
        ticks = _ticks_in(a, b, axis, log)
        if ticks < (1 if axis.get("tickmode") == "array" else 2):  # labelled rows: each row its own tick
            problems.append(
                f"{where}: {ticks} tick(s) over [{a:.3g}, {b:.3g}] ({'log' if log else 'linear'}, "
                f"dtick {axis.get('dtick')})"
            )
        if explicit and hi - lo <= 1e-9 * max(abs(lo), abs(hi), 1e-300):
            at = (lo - a) / ((b - a) or 1)
            if not 0.05 <= at <= 0.95:
                problems.append(f"{where}: the constant {lo:g} sits on the edge of [{a:.3g}, {b:.3g}]")
    return problems


def empty_problem(spec: dict) -> str | None:
    """An empty chart: no data trace with a finite value to draw."""
    for t in spec["data"]:
        coords = ("x",) if t.get("type") == "histogram" else ("y", "z")
        if is_data(t) and any(array(t.get(c)).size and np.isfinite(array(t.get(c))).any() for c in coords):
            return None
    return f"empty chart {str((spec.get('layout', {}).get('title') or {}).get('text', ''))[:60]!r}"


def label_problems(spec: dict) -> list[str]:
    """Labels placed outside the figure: annotations on the paper beyond [0, 1] in x."""
    out = []
    for a in spec.get("layout", {}).get("annotations") or []:
        if a.get("xref") == "paper" and not -0.01 <= float(a.get("x", 0)) <= 1.01:
            out.append(f"annotation {str(a.get('text'))[:40]!r} at paper x {a.get('x')}")
    return out


def legend_problems(spec: dict, runs: list[str]) -> list[str]:
    """Legends name runs: every run a figure draws traces for (legendgroup = the run) has a legend entry,
    named by its legend name (chart_style.legend_name)."""
    groups = {plot(r) for r in runs}
    drawn = {t.get("legendgroup") for t in spec["data"] if is_data(t) and t.get("legendgroup") in groups}
    if spec.get("layout", {}).get("showlegend") is False:
        return []  # a figure of one run keys it in its title (spectrum, histograms)
    entries = {
        t.get("name")
        for t in spec["data"]
        if t.get("showlegend") is not False and (t.get("showlegend") or t.get("meta") == "legend")
    }
    return [
        f"run {g!r} drawn without a legend entry {legend_name(g)!r}" for g in drawn if legend_name(g) not in entries
    ]
