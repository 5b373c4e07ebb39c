"""Pages with a snapshot above data.IN_PAGE_POINTS: the group breakdown, movement and neighbours kept come from
the worker's records (no pair work in the page), show the pending message until the records exist, then the
numbers, equal to the in-page computation they replaced."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data
from diagnostics import open_run
from diagnostics.measure import neighbours
from diagnostics.reference import geometry, probes
from diagnostics.work import worker
from runformat.writer import RunWriter

REPO = Path(__file__).resolve().parent.parent
N = data.IN_PAGE_POINTS + 200
RUN = "big"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 4
    centres = 2.0 * rng.standard_normal((4, 16))
    with RunWriter(str(root), RUN, config={"contrastive": {"temperature": 0.2}}) as w:
        for step, noise in ((0, 1.5), (10, 0.8)):
            z = (centres[labels] + noise * rng.standard_normal((N, 16))).astype(np.float32)
            w.log_metrics(step, {"loss/total": 1.0})
            w.log_snapshot(
                step,
                embeddings=z,
                positives=z + 0.3 * rng.standard_normal(z.shape).astype(np.float32),
                labels=labels,
                metadata={"split": np.where(np.arange(N) % 3, "train", "val")},
            )
    return root


def page(root, monkeypatch, path: str, **params) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.switch_page(path)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.caption, *at.markdown, *at.info))


def test_pending_then_breakdown_and_movement_from_the_records(root, monkeypatch):
    at = page(root, monkeypatch, "pages/geometry.py", geometry_run=RUN, geometry_by="split")
    assert "still being measured" in texts(at) and "5,000" not in texts(at)
    at = page(root, monkeypatch, "pages/projections.py", proj_run=RUN, proj_step="10")
    assert "Movement since step 0 arrives with the two snapshots' records" in texts(at)
    assert "5,000" not in texts(at)
    worker.watch(str(root), once=True)  # what the dashboard's worker does

    at = page(root, monkeypatch, "pages/geometry.py", geometry_run=RUN, geometry_by="split")
    table = at.dataframe[-1].value
    snap = open_run(os.path.join(str(root), RUN)).snapshot(10)
    want = geometry.breakdown(snap.embeddings, snap.positives, snap.metadata["split"].to_numpy())
    assert list(table["group"]) == ["train", "val"] and list(table["points"]) == list(
        want["n"]
    )  # table_view.HEADERS: n is "points"
    np.testing.assert_allclose(table["uniformity"], want["uniformity"], rtol=2e-6)

    at = page(root, monkeypatch, "pages/projections.py", proj_run=RUN, proj_step="10")
    kept = next(m for m in at.metric if m.label == "Neighbours kept").value
    first = open_run(os.path.join(str(root), RUN)).snapshot(0)
    retention = probes.neighbour_retention(first.embeddings, snap.embeddings, k=data.NEIGHBOURS_K)
    assert kept == f"{np.nanmean(retention):.0%}"
    moved = next(m for m in at.metric if m.label == "Median moved").value
    assert moved == f"{np.median(neighbours.displacement(first.embeddings, snap.embeddings)):.2f} rad"


def test_data_layer_reads_movement_and_shared_neighbours_from_records(tmp_path, monkeypatch):
    """On a small snapshot the record-based answers equal the in-page computation they replaced."""
    from diagnostics.measure import groups

    assert data.MAX_GROUPS == groups.MAX_GROUPS  # the page offers the columns the worker breaks down
    rng = np.random.default_rng(3)
    runs = {}
    for name in ("a", "b"):
        with RunWriter(str(tmp_path), name) as w:
            for step in (0, 5):
                z = rng.standard_normal((300, 8)).astype(np.float32)
                w.log_snapshot(step, embeddings=z, features=rng.standard_normal((300, 4)).astype(np.float32))
        runs[name] = open_run(os.path.join(str(tmp_path), name))
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(tmp_path))
    assert data.movement("a", 0, 5, "embeddings") is None and data.shared_neighbours("a", "b", 5, "embeddings") is None
    worker.watch(str(tmp_path), once=True)
    z = {(n, s): runs[n].snapshot(s).embeddings for n in runs for s in (0, 5)}
    moved, kept = data.movement("a", 0, 5, "embeddings")
    np.testing.assert_array_equal(moved, neighbours.displacement(z["a", 0], z["a", 5]).astype(np.float32))
    np.testing.assert_array_equal(kept, probes.neighbour_retention(z["a", 0], z["a", 5], k=data.NEIGHBOURS_K))
    np.testing.assert_array_equal(
        data.shared_neighbours("a", "b", 5, "embeddings"),
        probes.neighbour_retention(z["a", 5], z["b", 5], k=data.NEIGHBOURS_K),
    )
    f0, f1 = runs["a"].snapshot(0).features, runs["a"].snapshot(5).features  # features: still in the page
    np.testing.assert_array_equal(
        data.movement("a", 0, 5, "features")[1], probes.neighbour_retention(f0, f1, k=data.NEIGHBOURS_K)
    )
