"""Reading Plotly figure JSON back in tests: a page's step charts are one figure of panels
(diagnostics.chart_style.step_grid), each trace tagged meta.panel; legend-only and marker traces carry
meta "legend" / "marker" and no data."""
from __future__ import annotations


def is_data(trace: dict) -> bool:
    return trace.get("meta") not in ("legend", "marker")


def panels(spec: dict) -> list[dict]:
    """A figure spec split into one spec per panel ({"layout": {"title", "xaxis"}, "data"}); a figure without
    panels is returned whole (legend and marker traces dropped)."""
    layout = spec.get("layout", {})
    tagged = [t for t in spec["data"] if isinstance(t.get("meta"), dict) and "panel" in t["meta"]]
    if not tagged:
        return [{**spec, "data": [t for t in spec["data"] if is_data(t)]}]
    x_title = next((a["title"] for k, a in sorted(layout.items()) if k.startswith("xaxis")
                    and isinstance(a, dict) and a.get("title", {}).get("text")), {"text": ""})
    out: dict[str, dict] = {}
    for trace in tagged:
        title = trace["meta"]["panel"]
        out.setdefault(title, {"layout": {"title": {"text": title}, "xaxis": {"title": x_title}}, "data": []})
        out[title]["data"].append(trace)
    return list(out.values())
