"""The Cross-modal page on copies of the shipped cross-modal ablation pair (and one single-modality run): in
AppTest, the figures it promises with the right traces and numbers, the linked pairs of a selection, and the
page for runs without a second modality; in a real Chromium, a box selection that links pairs, with a
screenshot (test-artifacts/crossmodal*.png)."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from browser import REPO, assert_no_error, browser_page, screenshot, streamlit_server, visit, wait_for_app  # noqa: F401
from streamlit.testing.v1 import AppTest
from test_app_monitor import figures, find, no_exception

from dashboard import crossmodal_view
from diagnostics import open_run
from diagnostics.measure.crossmodal import crossmodal_numbers, modality_gap
from diagnostics.measure.projection import unit_rows
from diagnostics.store import record as records
from runformat import layout
from runformat.writer import RunWriter

TIMEOUT = 120
PAIRED = ("crossmodal-clip-lambda0", "crossmodal-clip-lambda1")
SINGLE = "healthy-infonce-tau0.1"
GAP = crossmodal_view.GAP
GEN = ("gen/conditional_accuracy", "gen/diversity", "gen/frechet_distance")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    for name in (*PAIRED, SINGLE):
        shutil.copytree(REPO / "sample_runs" / name, path / name)
    for name in PAIRED:  # the records the dashboard's worker would write (the single run's stay pending)
        run = open_run(name, root=str(path))
        for step in run.snapshot_steps():
            records.get_or_compute(run, step)
    return path


def app(root, monkeypatch, runs) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/crossmodal.py")
    at.session_state["runs"] = list(runs)
    return at


def chart(at: AppTest, prefix: str) -> dict:
    """The plotly spec of the chart whose title starts with `prefix`."""
    specs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    found = [s for s in specs if s["layout"].get("title", {}).get("text", "").startswith(prefix)]
    assert found, f"no chart titled {prefix!r}"
    return found[0]


def names(spec: dict) -> set[str]:
    """The names of the traces that draw data (the run legend's entries draw none)."""
    return {t["name"] for t in spec["data"] if t.get("showlegend") is False}


def coords(trace: dict, axis: str) -> np.ndarray:
    """A trace's coordinate array from plotly JSON: a typed array {"dtype", "bdata"[, "shape"]} or a list."""
    v = trace[axis]
    if isinstance(v, dict) and "bdata" in v:
        flat = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(np.float64)
        return flat.reshape([int(k) for k in str(v["shape"]).split(",")]) if "shape" in v else flat
    return np.asarray(v, dtype=np.float64)  # None (a gap) becomes NaN


def test_page_shows_each_part_for_the_paired_runs(root, monkeypatch):
    at = app(root, monkeypatch, [*PAIRED, SINGLE]).run()
    no_exception(at)
    figs = figures(at)
    for metric in GEN:  # one chart per gen metric, a line per run with a point per evaluation step
        title = crossmodal_view.GEN_METRICS[metric][0]
        logged = {n: open_run(n, root=str(root)).metrics()[metric].notna().sum() for n in PAIRED}
        assert find(figs, title) == dict(logged), title
    joint = find(figs, f"PCA of both modalities · {PAIRED[0]} · step 600")
    assert joint == {"image": 300, "caption": 300}  # both modalities, every row, no links before a selection
    grid = coords(chart(at, f"Generated samples · {PAIRED[0]}")["data"][0], "z")
    assert grid.shape == (10 * 9 - 1, 9 * 9 - 1)  # 10 digits × 9 captions of 8×8 px, one-px gaps between
    assert np.isnan(grid[8]).all() and np.nanmax(grid) <= 255
    # the single-modality run is left out of every figure
    assert not any(SINGLE in str(traces) or SINGLE in title for title, traces in figs.items())


def run_table_with(crossmodal: bool, root):
    """data.run_table with the cross-modal columns as crossmodal_numbers gives them (`crossmodal`), or without
    them (records written before the engine measured them): either state, whatever the engine writes now."""
    from dashboard import data

    real = data.run_table

    def table(name):
        rows, pending = real(name)
        rows = rows.drop(
            columns=[c for c in rows if c == GAP or c.startswith(("cross_modal", "uniformity_", "effective_rank_"))]
        )
        if crossmodal and name in PAIRED:
            run = open_run(name, root=str(root))
            numbers = [
                crossmodal_numbers(s.embeddings, s.paired_embeddings)
                for s in (run.snapshot(int(step)) for step in rows["step"])
            ]
            rows = pd.concat([rows, pd.DataFrame(numbers, index=rows.index)], axis=1)
        return rows, pending

    return table


def test_gap_and_recall_are_drawn_from_the_run_table(root, monkeypatch):
    from dashboard import data

    monkeypatch.setattr(data, "run_table", run_table_with(True, root))
    at = app(root, monkeypatch, PAIRED).run()
    no_exception(at)
    assert not any("not measured yet" in i.value for i in at.info)
    expect = crossmodal_numbers(
        *(lambda s: (s.embeddings, s.paired_embeddings))(open_run(PAIRED[1], root=str(root)).snapshot(600))
    )
    gap = chart(at, "Modality gap")
    assert names(gap) == set(PAIRED)
    trace = next(t for t in gap["data"] if t["name"] == PAIRED[1])
    assert coords(trace, "x")[-1] == 600
    assert coords(trace, "y")[-1] == pytest.approx(expect[GAP], rel=1e-12)
    recall = chart(at, "Cross-modal recall@k")
    assert names(recall) == {f"{r} · recall@{k}" for r in PAIRED for k in (1, 5, 10)}
    at10 = next(t for t in recall["data"] if t["name"] == f"{PAIRED[1]} · recall@10")
    assert coords(at10, "y")[-1] == pytest.approx(expect["cross_modal_recall@10"], rel=1e-12)
    directions = names(chart(at, "Recall@1 by direction"))
    assert directions == {f"{r} · {d}" for r in PAIRED for d in ("image → caption", "caption → image")}
    for title in ("Uniformity per modality", "Effective rank per modality"):
        assert names(chart(at, title)) == {f"{r} · {m}" for r in PAIRED for m in ("image", "caption")}
    tiles = {m.label: m.value for m in at.metric}  # the focused run (the first) at its last step
    first = crossmodal_numbers(
        *(lambda s: (s.embeddings, s.paired_embeddings))(open_run(PAIRED[0], root=str(root)).snapshot(600))
    )
    assert tiles["Modality gap"] == f"{first[GAP]:.3f}"
    assert tiles["Recall@5"] == f"{first['cross_modal_recall@5']:.1%}"


def test_records_without_crossmodal_numbers_say_so(root, monkeypatch):
    from dashboard import data

    monkeypatch.setattr(data, "run_table", run_table_with(False, root))
    at = app(root, monkeypatch, PAIRED).run()
    no_exception(at)
    assert any("not measured yet" in i.value for i in at.info)
    assert not [k for k in figures(at) if k.startswith(("Modality gap", "Cross-modal recall"))]
    assert chart(at, "PCA of both modalities")  # the rest of the page does not wait for them
    assert not at.metric


def test_joint_layout_is_a_contraction_of_the_gap(root, monkeypatch):
    """The layout drawn is an orthogonal projection of the centred 2N unit rows: the distance between the
    modalities' 2-D centroids is at most the modality gap (‖P(μa − μb)‖ ≤ ‖μa − μb‖), the points are centred,
    and the first axis carries at least as much variance as the second."""
    at = app(root, monkeypatch, PAIRED).run()
    no_exception(at)
    image, caption = chart(at, "PCA of both modalities")["data"]
    xy_a = np.stack([coords(image, "x"), coords(image, "y")], axis=1)
    xy_b = np.stack([coords(caption, "x"), coords(caption, "y")], axis=1)
    both = np.concatenate([xy_a, xy_b])
    # float32 coordinates of size ~1: the mean of 600 of them is exact to ~1e-7 · √600
    assert np.abs(both.mean(axis=0)).max() < 1e-5
    assert both[:, 0].var() >= both[:, 1].var()
    snap = open_run(PAIRED[0], root=str(root)).snapshot(600)
    za, zb = (torch.from_numpy(unit_rows(z)[0]) for z in (snap.embeddings, snap.paired_embeddings))
    gap = modality_gap(za, zb)
    assert 0 < np.linalg.norm(xy_a.mean(axis=0) - xy_b.mean(axis=0)) <= gap + 1e-5


def test_a_selection_links_each_row_to_its_partner(root, monkeypatch):
    at = app(root, monkeypatch, PAIRED)
    picked = [3, 41, 250]
    at.session_state[crossmodal_view.PAIRS_KEY] = {"run": PAIRED[0], "step": 600, "positions": picked}
    at.run()
    no_exception(at)
    spec = chart(at, "PCA of both modalities")
    image, caption, links = spec["data"]
    assert image["selectedpoints"] == picked and caption["selectedpoints"] == picked  # highlighted
    x, y = coords(links, "x"), coords(links, "y")
    assert len(x) == 3 * len(picked) and np.isnan(x[2::3]).all()  # one segment per pair, NaN between
    np.testing.assert_array_equal(x[0::3], coords(image, "x")[picked])
    np.testing.assert_array_equal(y[1::3], coords(caption, "y")[picked])
    # a selection made at another step links nothing here
    at.session_state[crossmodal_view.PAIRS_KEY] = {"run": PAIRED[0], "step": 500, "positions": picked}
    at.run()
    assert [t["name"] for t in chart(at, "PCA of both modalities")["data"]] == ["image", "caption"]


def test_runs_without_a_second_modality_get_a_hint(root, monkeypatch):
    at = app(root, monkeypatch, [SINGLE]).run()
    no_exception(at)
    assert not at.get("plotly_chart")
    assert any("stores a second modality" in i.value for i in at.info)


@pytest.mark.browser
@pytest.mark.slow
def test_box_selection_links_pairs_in_a_browser(root, browser_page):  # noqa: F811
    page = browser_page
    with streamlit_server(root) as url:
        visit(page, url, "crossmodal", timeout_ms=90_000)  # no selection: every run under the root
        assert_no_error(page)
        screenshot(page, "crossmodal")
        plot = page.locator('[data-testid="stPlotlyChart"]', has=page.locator(".gtitle", has_text="PCA of both"))
        plot.locator("canvas").first.wait_for()
        plot.scroll_into_view_if_needed()  # mouse events land only inside the viewport
        box = plot.locator(".nsewdrag").first.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx - box["width"] / 3, cy - box["height"] / 3)
        page.mouse.down()
        page.mouse.move(cx + box["width"] / 3, cy + box["height"] / 3, steps=8)
        page.mouse.up()
        page.get_by_text("linked.").first.wait_for(timeout=30_000)
        wait_for_app(page)
        assert_no_error(page)
        assert page.locator(".legendtext", has_text="matched pairs").count() == 1
        screenshot(page, "crossmodal-selection", full_page=False)
        page.get_by_role("button", name="Clear the links").click()
        wait_for_app(page)
        page.get_by_text("linked.").wait_for(state="detached", timeout=30_000)
        assert page.locator(".legendtext", has_text="matched pairs").count() == 0


def test_hostile_names_captions_and_modalities_stay_text(tmp_path, monkeypatch):
    """A paired run named like a Markdown image, with HTML modality names and captions, a gen metric and a
    sample grid: every string reaches Markdown and Plotly escaped (the checks of test_app_hostile)."""
    from test_app_hostile import IMAGE, META, TAGS, assert_inert

    rng = np.random.default_rng(0)
    n, d = 60, 8
    with RunWriter(str(tmp_path), IMAGE, config={"description": TAGS, "model": {"kind": "cvae"}}) as w:
        w.log_metrics(10, {"loss/total": 1.0, "gen/conditional_accuracy": 0.5})
        z = rng.standard_normal((n, d)).astype(np.float32)
        w.log_snapshot(
            10,
            embeddings=z,
            paired_embeddings=z + 1,
            labels=np.arange(n) % 4,
            metadata={"caption": META[np.arange(n) % 4]},
            modality_names=(TAGS, "<a href='x'>b</a>"),
        )
    np.save(tmp_path / IMAGE / layout.GENERATED_FILE, rng.integers(0, 255, (10, 9, 8, 8), dtype=np.uint8))
    at = app(tmp_path, monkeypatch, [IMAGE])
    at.session_state[crossmodal_view.PAIRS_KEY] = {"run": IMAGE, "step": 10, "positions": [0, 1]}
    at.run()
    no_exception(at)
    assert len(at.get("plotly_chart")) == 3  # gen metric, joint projection, sample grid
    assert_inert(at)
    hover = chart(at, "PCA of both modalities")["data"][0]["text"]
    assert "&lt;b&gt;x&lt;/b&gt;" in hover[0]  # the caption shown as text
