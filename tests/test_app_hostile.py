"""Every page on a hostile root: run names, descriptions, notes, config keys and values and snapshot metadata
that try to become Markdown images and links, HTML, Streamlit colour tags and icon shortcodes, plus a run
folder whose name is not valid UTF-8. The strings must show literally: as dataframe cells, or escaped in
Markdown (`text.md`) and in every Plotly name, title and hover (`text.plot`); no page may raise."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from browser import REPO
from streamlit.testing.v1 import AppTest

from dashboard.text import md, plot
from diagnostics import open_run
from diagnostics.work import worker
from runformat.writer import RunWriter

IMAGE = "![pix](https:evil.example)"
TAGS = "<i>x<i> :red[y] :material_home: &amp;"
LINK = "[link](https:evil.example) & co"
NAMES = (IMAGE, TAGS, LINK)
DESCRIPTION = "<b>x</b> [link](http://evil.example) ![pix](http://evil.example/a.png) <script>alert(1)</script>"
NOTES = f"We saw {IMAGE} and <b>x</b>.\n[link](http://evil.example)"
META = np.array(["<b>x</b>", "[link](http://evil.example)", IMAGE, "<a href='http://evil.example'>a</a>"])
META_COLUMN = "<b>grp</b>"
UNREADABLE = b"bad-\xff-name"
# What must never reach Markdown or a Plotly label unescaped.
RAW = ("![", "](", "<b>", "<i>", "<a ", ":red[", "<script>")
PAGES = (
    "pages/home.py",
    "pages/live.py",
    "pages/geometry.py",
    "pages/collapse.py",
    "pages/projections.py",
    "pages/compare.py",
    "pages/report.py",
)


def write_hostile_root(root) -> None:
    """Three runs named after the attacks, with hostile descriptions, notes, config and metadata, and a copy
    of the first in a folder whose name is not valid UTF-8."""
    rng = np.random.default_rng(0)
    n, d = 80, 8
    labels = np.arange(n) % 4
    for i, name in enumerate(NAMES):
        config = {
            "description": DESCRIPTION,
            "<b>key</b>": f"[link](http://evil.example) {i}",
            "contrastive": {"temperature": 0.1, "weight": float(i)},
        }
        with RunWriter(str(root), name, config=config) as w:
            for step in range(21):
                w.log_metrics(
                    step, {"loss/total": 1.0 / (1 + step), "loss/contrastive": 0.5, "loss/reconstruction": 0.1}
                )
                if step % 10 == 0:
                    z = (np.eye(4, d)[labels] * 3 + rng.standard_normal((n, d))).astype(np.float32)
                    w.log_snapshot(
                        step,
                        embeddings=z,
                        positives=z + 0.1,
                        labels=labels,
                        metadata={META_COLUMN: META[labels], "score": rng.random(n)},
                    )
        open_run(os.path.join(str(root), name)).save_notes(NOTES)
    shutil.copytree(
        os.path.join(os.fsencode(str(root)), os.fsencode(IMAGE)), os.path.join(os.fsencode(str(root)), UNREADABLE)
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile")
    write_hostile_root(path)
    worker.watch(str(path), once=True)
    return path


def app(root, monkeypatch, page: str, runs=NAMES, **params) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    monkeypatch.setenv("CONTRASTSCOPE_UMAP_WARMUP", "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.session_state["runs"] = list(runs)
    if page != "pages/home.py":  # app.py (with the sidebar) runs Home itself; switch_page runs a page alone
        at.switch_page(page)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_sources(at: AppTest) -> list[str]:
    """The Markdown source of every element Streamlit renders as Markdown, widget labels included."""
    out = []
    for kind in (
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "toast",
        "title",
        "header",
        "subheader",
        "expander",
    ):
        out += [str(getattr(e, "value", "") or getattr(e, "label", "")) for e in at.get(kind)]
    for kind in ("selectbox", "multiselect", "text_area", "toggle", "slider", "select_slider", "metric"):
        out += [str(e.label) for e in at.get(kind)]
    return out


def plotly_strings(at: AppTest) -> list[str]:
    """Every string of every Plotly chart that plotly.js renders as HTML: names, titles, hovers, text, ticks."""
    out = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and key in ("name", "text", "hovertemplate", "title", "x", "label"):
            out.append(node)

    for chart in at.get("plotly_chart"):
        walk(json.loads(chart.proto.spec))
    return out


def assert_inert(at: AppTest) -> None:
    for source in markdown_sources(at):
        assert not any(raw in source for raw in RAW), f"unescaped run string in Markdown: {source!r}"
    for s in plotly_strings(at):
        assert not any(raw in s for raw in ("<b>", "<i>", "<a ", "<script>")), f"raw HTML in a figure: {s!r}"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_hostile_strings_inert(root, monkeypatch, page):
    at = app(root, monkeypatch, page)
    assert_inert(at)


def test_home_shows_the_strings_literally_and_names_the_unreadable_folder(root, monkeypatch):
    at = app(root, monkeypatch, "pages/home.py", runs=())
    table = at.dataframe[0].value.set_index("run")
    assert sorted(table.index) == sorted(NAMES)  # as cells: literally, nothing escaped
    assert (table["description"] == DESCRIPTION).all()
    assert (table["notes"] == NOTES.strip()).all()
    assert sorted(at.multiselect(key="runs").options) == sorted(NAMES)  # the sidebar picker too
    warning = next(w.value for w in at.warning if "rename these folders" in w.value)
    assert md("bad-\\xff-name") in warning
    assert_inert(at)


def test_figures_name_runs_and_groups_literally(root, monkeypatch):
    at = app(root, monkeypatch, "pages/live.py", live_paused="true")
    names = plotly_strings(at)
    assert f"{plot(IMAGE)} · total" in names and f"{plot(TAGS)} · total" in names
    at = app(root, monkeypatch, "pages/geometry.py", runs=(TAGS,), geometry_by=META_COLUMN)
    ticks = plotly_strings(at)
    assert plot("<b>x</b>") in ticks and plot(META_COLUMN) in " ".join(ticks)
    assert "</b>" not in "".join(ticks).replace("&lt;/b&gt;", "")


def test_projection_legend_and_hover_are_text(root, monkeypatch):
    at = app(root, monkeypatch, "pages/projections.py", proj_run=LINK, proj_colour=META_COLUMN)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sorted(t["name"] for t in spec["data"]) == sorted(plot(v) for v in META)
    assert spec["layout"]["legend"]["title"]["text"] == plot(META_COLUMN)
    assert plot(LINK) in spec["layout"]["title"]["text"]
    hover = [t for trace in spec["data"] for t in (trace.get("text") or [])]
    assert hover and all("<" not in t for t in hover)


def test_compare_config_diff_shows_keys_and_values_literally(root, monkeypatch):
    at = app(root, monkeypatch, "pages/compare.py", runs=NAMES[:2])
    diff = next(d.value for d in at.dataframe if d.value.index.name == "run")  # one row per run (#23 item 3)
    assert diff["<b>key</b>"].tolist() == ["[link](http://evil.example) 0", "[link](http://evil.example) 1"]
    assert_inert(at)
    assert any(md(IMAGE) in s for s in markdown_sources(at))  # the notes form names the run, escaped


def test_projection_search_for_markup_is_plain_text(root, monkeypatch):
    """A search for "<b>x" finds the rows whose metadata value is "<b>x</b>" (a quarter of them), says so
    with the query escaped, and the legend and hovers of the matches stay text."""
    at = app(
        root,
        monkeypatch,
        "pages/projections.py",
        proj_run=LINK,
        proj_colour=META_COLUMN,
        proj_search="<B>X",
        proj_isolate="true",
    )
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == [plot("<b>x</b>")]
    n = open_run(os.path.join(str(root), LINK)).snapshot(20).n
    assert any(f"**{n // 4}** of {n} points match “{md('<B>X')}”" in c.value for c in at.caption)
    assert_inert(at)
