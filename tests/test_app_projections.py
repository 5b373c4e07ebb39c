"""AppTest of the Projections page: the figures it sends carry every point, coloured by the chosen column,
at the layouts diagnostics computes; settings come from the URL; t-SNE waits for its button, then the cache."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from diagnostics import open_run
from diagnostics.measure.neighbours import displacement
from diagnostics.measure.projection import align_to
from diagnostics.store.cache import cached_projection
from diagnostics.work import worker
from tests.synthetic_runs import write_synthetic_run

REPO = Path(__file__).resolve().parent.parent
N = 120
RUN = "healthy"
STEPS = [0, 20, 40, 60, 80, 100]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_run(root, RUN, kind="healthy", n=N)
    write_synthetic_run(root, "collapse", kind="complete_collapse", n=N, seed=1)
    write_synthetic_run(root, "tiny", n=40, steps=10, snapshot_every=5)
    write_synthetic_run(root, "two-views", n=N, seed=2, positive_images=True)
    worker.watch(str(root), once=True)
    return root


def open_page(root, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.switch_page("pages/projections.py")
    at.query_params.update({"proj_run": RUN, **params})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if not scatter(at):  # the page asked the worker for this layout: do what the worker would, then look again
        worker.watch(str(root), once=True)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def _typed_array(obj):
    """Plotly sends numpy arrays as {"dtype", "bdata" (base64), "shape"}; decode them back."""
    if isinstance(obj, dict) and "bdata" in obj and "dtype" in obj:
        arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=obj["dtype"])
        shape = obj.get("shape")
        return arr.reshape([int(x) for x in str(shape).split(",")]) if shape else arr
    return obj


def figures(at):
    return [
        go.Figure(json.loads(c.proto.spec, object_hook=_typed_array), skip_invalid=True) for c in at.get("plotly_chart")
    ]


def scatter(at):
    return [f for f in figures(at) if f.data and f.data[0].type in ("scattergl", "scatter")]


def rows_of(trace) -> np.ndarray:
    return np.asarray(trace.customdata)[:, 0].astype(int)


def test_pca_shows_every_point_coloured_by_label(root, monkeypatch):
    at = open_page(root, monkeypatch)
    (fig,) = scatter(at)
    run = open_run(RUN, root=str(root))
    snap = run.snapshot(STEPS[-1])
    assert [t.name for t in fig.data] == [str(c) for c in range(5)]
    rows = np.concatenate([rows_of(t) for t in fig.data])
    assert np.array_equal(np.sort(rows), np.arange(N))  # every point exactly once
    layout = cached_projection(run, STEPS[-1], "pca")
    for trace in fig.data:
        r = rows_of(trace)
        assert (snap.labels[r] == int(trace.name)).all()
        assert np.allclose(trace.x, layout[r, 0]) and np.allclose(trace.y, layout[r, 1])
    assert len({t.marker.color for t in fig.data}) == 5


def test_continuous_metadata_colour(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_colour="strength", proj_step="40")
    (fig,) = scatter(at)
    (trace,) = fig.data
    strength = open_run(RUN, root=str(root)).snapshot(40).metadata["strength"].to_numpy()
    assert np.allclose(np.asarray(trace.marker.color), strength[rows_of(trace)])
    assert trace.marker.showscale and len(trace.x) == N
    assert at.query_params["proj_step"] == "40"


def test_string_metadata_and_features(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_colour="class", proj_source="Features")
    (fig,) = scatter(at)
    assert [t.name for t in fig.data] == [f"c{c}" for c in range(5)]
    layout = cached_projection(open_run(RUN, root=str(root)), STEPS[-1], "pca", source="features")
    r = rows_of(fig.data[2])
    assert np.allclose(fig.data[2].x, layout[r, 0])


def test_moved_colour_is_the_displacement_since_the_previous_snapshot(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_colour="moved since previous snapshot")
    (fig,) = scatter(at)
    run = open_run(RUN, root=str(root))
    moved = displacement(run.snapshot(80).embeddings, run.snapshot(100).embeddings)
    (trace,) = fig.data
    assert np.allclose(np.asarray(trace.marker.color), moved[rows_of(trace)], atol=1e-6)
    assert any("Median moved" in m.label for m in at.metric)


@pytest.mark.slow  # one real t-SNE of 40 points: ~5 s idle, far more on a loaded 2-core box
def test_tsne_waits_for_compute_then_comes_from_the_cache(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_run="tiny", proj_method="t-SNE", proj_perplexity="5")
    assert not scatter(at)  # t-SNE waits for a click, even after a worker pass
    assert at.button(key="proj_compute").label == "Compute t-SNE of step 10"
    at.button(key="proj_compute").click().run()
    assert not at.exception and not scatter(at)
    assert any("being computed by the background worker" in c.value for c in at.caption)
    worker.watch(str(root), once=True)
    at.run()
    (fig,) = scatter(at)
    assert sum(len(t.x) for t in fig.data) == 40
    again = open_page(root, monkeypatch, proj_run="tiny", proj_method="t-SNE", proj_perplexity="5")
    (fig2,) = scatter(again)  # no button press: straight from the run's cache
    assert np.allclose(fig2.data[0].x, fig.data[0].x)


def test_through_training_frames_are_the_aligned_chain(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_view="Through training")
    fig = scatter(at)[0]
    run = open_run(RUN, root=str(root))
    assert [f.name for f in fig.frames] == [str(s) for s in STEPS]
    assert fig.layout.xaxis.autorange is False  # fixed axes: frames do not rescale
    for k, frame in enumerate(fig.frames):
        layout = cached_projection(run, STEPS[k], "pca", init_from_step=STEPS[k - 1] if k else None)
        assert sum(len(t.x) for t in frame.data) == N
        r = rows_of(fig.data[1])
        assert np.allclose(frame.data[1].x, layout[r, 0], atol=1e-5)


def test_side_by_side_aligns_the_other_step(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_view="Side by side", proj_step_b="20")
    left, right = scatter(at)
    run = open_run(RUN, root=str(root))
    a, b = cached_projection(run, 100, "pca"), cached_projection(run, 20, "pca")
    expected = align_to(a, b)
    r = rows_of(right.data[0])
    assert np.allclose(right.data[0].x, expected[r, 0], atol=1e-5)
    assert np.allclose(left.data[0].x, a[r, 0], atol=1e-5)


def test_side_by_side_of_two_runs(root, monkeypatch):
    at = open_page(root, monkeypatch, proj_view="Side by side", proj_compare="another run", proj_run_b="collapse")
    assert len(scatter(at)) == 2
    assert any("shared" in m.label for m in at.metric)


def test_selected_rows_map_traces_to_samples():
    from dashboard.selection_url import selected_rows

    event = SimpleNamespace(
        selection=SimpleNamespace(
            points=[
                {"curve_number": 1, "point_index": 0},
                {"curve_number": 0, "point_index": 2},
                {"curve_number": 1, "point_index": 0},
            ]
        )
    )
    rows = selected_rows(event, [np.array([5, 6, 7]), np.array([9, 8])])
    assert rows.tolist() == [7, 9]
    assert selected_rows(None, []).size == 0


def _selection_script(root: str, rows: list[int], run: str = "collapse"):
    import os

    import numpy as np

    os.environ["CONTRASTSCOPE_RUNS"] = root
    from dashboard import data
    from dashboard.projection_controls import Settings
    from dashboard.selection_panel import selection_panel

    s = Settings(
        run=run,
        step=100,
        steps=(80, 100),
        method="pca",
        source="embeddings",
        seed=0,
        params=(),
        colour="label",
        view="Snapshot",
    )
    selection_panel(s, data.snapshot(run, 100), np.asarray(rows))


def test_selection_panel_lists_positives_neighbours_and_false_negatives(root):
    from diagnostics.reference.geometry import similarity_stats

    rows = [0, 3, 7]
    at = AppTest.from_function(_selection_script, args=(str(root), rows), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    snap = open_run("collapse", root=str(root)).snapshot(100)
    stats = similarity_stats(snap.embeddings, snap.positives, k=6)
    assert table["index"].tolist() == rows
    assert np.allclose(table["cos to positive"], stats.positive_cos[rows], atol=1e-6)
    hard = stats.hardest_negative_index[rows, 0]
    assert table["likely false negative"].tolist() == (snap.labels[hard] == snap.labels[rows]).tolist()
    # gallery of the selection, the focused anchor, its nearest neighbours, its hardest negatives
    assert len(at.get("image")) == 4


def test_true_scale_shows_the_shipped_collapse_as_a_dot_with_its_spread(tmp_path, monkeypatch):
    """The true-scale view (projection.unit_pca) of the sample run whose negatives are removed, at its last
    step: every point in the unit disc on fixed axes [-1, 1], all within 0.2 of one point near the rim, and the
    caption says std 0.07× and mean cosine 1.00. PCA of the same snapshot fills its frame instead."""
    import shutil

    from diagnostics.measure.projection import caption_text, project, spread_caption

    name = "complete-collapse-negatives-removed"
    shutil.copytree(REPO / "sample_runs" / name, tmp_path / name)
    run = open_run(name, root=str(tmp_path))
    last = run.snapshot_steps()[-1]
    at = open_page(tmp_path, monkeypatch, proj_run=name, proj_method="true scale")  # asked on sight, like PCA
    (fig,) = scatter(at)
    xy = np.concatenate([np.column_stack([t.x, t.y]) for t in fig.data])
    assert len(xy) == 500
    assert np.allclose(np.sort(xy[:, 0]), np.sort(project(run.snapshot(last).embeddings, "unit_pca")[:, 0]), atol=1e-6)
    assert (np.linalg.norm(xy, axis=1) <= 1 + 1e-6).all()
    assert np.linalg.norm(xy - xy.mean(axis=0), axis=1).max() < 0.2  # a dot…
    assert np.linalg.norm(xy.mean(axis=0)) > 0.9  # …near the rim: the one direction left
    assert list(fig.layout.xaxis.range) == [-1.05, 1.05] and fig.layout.xaxis.autorange is False
    expected = caption_text(spread_caption(run.snapshot(last).embeddings))
    assert "std 0.07×" in expected and "mean cosine 1.00" in expected
    assert expected in [c.value for c in at.caption]
    pca = open_page(tmp_path, monkeypatch, proj_run=name, proj_method="PCA")  # the spread under every layout
    assert expected in [c.value for c in pca.caption]
    assert scatter(pca)[0].layout.xaxis.range is None  # PCA rescales: its frame is fitted to the cloud


def _pictures(element) -> list[tuple[str, str]]:
    return [(img.caption, img.url) for img in element.proto.imgs]


def _picture_script(root: str, run: str, field: str, row: int):
    import os

    import streamlit as st

    os.environ["CONTRASTSCOPE_RUNS"] = root
    from dashboard import data
    from dashboard.selection_panel import thumbnail

    st.image([thumbnail(getattr(data.snapshot(run, 100), field)[row])], width=96)


def _url_of(root, run: str, field: str, row: int) -> str:
    """The media URL st.image gives this picture: a hash of its PNG bytes, so equal URLs mean equal pixels."""
    at = AppTest.from_function(_picture_script, args=(str(root), run, field, row)).run()
    return at.get("image")[0].proto.imgs[0].url


def test_anchor_shown_beside_its_positive_only_when_the_snapshot_has_its_picture(root):
    from dashboard.selection_panel import thumbnail

    plain = AppTest.from_function(_selection_script, args=(str(root), [0, 3, 7]), default_timeout=120).run()
    anchor = plain.get("image")[1]  # after the selection's gallery
    assert [c for c, _ in _pictures(anchor)] == ["anchor #0 · 0"]  # no positive picture: no placeholder
    assert not any("positive" in m.value for m in plain.markdown if m.value.startswith("**Anchor"))

    at = AppTest.from_function(_selection_script, args=(str(root), [0, 3, 7], "two-views"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    anchor = at.get("image")[1]
    assert [c for c, _ in _pictures(anchor)] == ["anchor #0 · 0", "its positive"]
    assert "**Anchor and its positive**" in [m.value for m in at.markdown]
    snap = open_run("two-views", root=str(root)).snapshot(100)
    assert not np.array_equal(thumbnail(snap.images[0]), thumbnail(snap.positive_images[0]))
    (_, anchor_url), (_, positive_url) = _pictures(anchor)
    assert anchor_url == _url_of(root, "two-views", "images", 0)
    assert positive_url == _url_of(root, "two-views", "positive_images", 0)


def test_search_isolate_and_url_selection_hold_in_every_view(root, monkeypatch):
    """Issue 23 item 10: the search, isolate switch and a selection from the URL were the Snapshot view's
    only; the play-through and the side-by-side now mark the same rows."""
    from dashboard.selection_url import encode

    label3 = np.flatnonzero(np.arange(N) % 5 == 3)  # metadata "class" c3: the rows with label 3
    at = open_page(root, monkeypatch, proj_view="Through training", proj_search="c3", proj_isolate="true")
    fig = scatter(at)[0]
    for frame in fig.frames:
        assert sum(len(t.x) for t in frame.data) == len(label3)  # isolated: only the matches, every frame
    assert sorted(np.concatenate([rows_of(t) for t in fig.data])) == list(label3)
    at = open_page(
        root, monkeypatch, proj_view="Side by side", proj_step_b="20", proj_search="c3", proj_sel=encode([3, 8])
    )
    left, right = scatter(at)
    for fig in (left, right):
        grey = next(t for t in fig.data if t.name == "not matching")
        assert len(grey.x) == N - len(label3)
        picked = [rows_of(t)[list(t.selectedpoints)] for t in fig.data if t.selectedpoints is not None]
        assert sorted(np.concatenate(picked)) == [3, 8]
