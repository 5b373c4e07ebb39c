"""Issue 24 item 13: a picked run whose files are hostile in ways the reader refuses (config.json a JSON string,
nested too deep, a symlink out of the root; every snapshot unreadable; a layout symlinked out of the root or a
huge sparse layout; a sidecar with no `n` and positives of another length) and a worker.json with wrong value
types or a heartbeat in the far future. Each page shows an error card for that run (or a "not running" worker
line), never an exception, and the good run beside it is still drawn."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
from browser import REPO
from streamlit.testing.v1 import AppTest

from dashboard.text import md
from diagnostics.work import worker
from runformat import layout
from runformat.writer import RunWriter

GOOD = "good"
CONFIGS = {"config-string": '"just a string"', "config-deep": "[" * 100 + "]" * 100}
LINKED = "config-linked-out"
UNREADABLE = "snapshots-unreadable"
NO_N = "sidecar-no-n"
LAYOUT_OUT, LAYOUT_HUGE = "layout-linked-out", "layout-huge"
ALL = (GOOD, *CONFIGS, LINKED, UNREADABLE, NO_N, LAYOUT_OUT, LAYOUT_HUGE)


def _write(root: str, name: str, rng) -> None:
    labels = np.arange(40) % 4
    with RunWriter(root, name, config={"contrastive": {"temperature": 0.1}}) as w:
        for step in range(11):
            w.log_metrics(step, {"loss/total": 1.0 / (1 + step), "temperature": 0.1})
            if step % 5 == 0:
                z = (np.eye(4, 8)[labels] * 3 + rng.standard_normal((40, 8))).astype(np.float32)
                w.log_snapshot(step, embeddings=z, positives=z + 0.1, labels=labels)


def _sidecars(root: str, name: str) -> list[str]:
    folder = os.path.join(root, name, layout.SNAPSHOT_DIR)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".json"))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("pages"))
    outside = str(tmp_path_factory.mktemp("outside"))
    rng = np.random.default_rng(0)
    for name in ALL:
        _write(root, name, rng)
    for name, text in CONFIGS.items():
        with open(os.path.join(root, name, layout.CONFIG_FILE), "w") as f:
            f.write(text)
    with open(os.path.join(outside, "config.json"), "w") as f:
        f.write('{"secret": 1}')
    os.remove(os.path.join(root, LINKED, layout.CONFIG_FILE))
    os.symlink(os.path.join(outside, "config.json"), os.path.join(root, LINKED, layout.CONFIG_FILE))
    for sidecar in _sidecars(root, NO_N):  # no n, and positives one row short of the embeddings
        with open(sidecar) as f:
            info = json.load(f)
        del info["n"]
        folder = sidecar[: -len(".json")]
        pos = np.load(os.path.join(folder, "positives.npy"))[:-1]
        np.save(os.path.join(folder, "positives.npy"), pos)
        info["fields"]["positives"]["shape"] = list(pos.shape)
        with open(sidecar, "w") as f:
            json.dump(info, f)
    for sidecar in _sidecars(root, UNREADABLE):  # before the worker: every record is an error
        with open(os.path.join(sidecar[: -len(".json")], "embeddings.npy"), "wb") as f:
            f.write(b"garbage")
    worker.watch(root, once=True)
    with open(os.path.join(outside, "layout.npy"), "wb") as f:
        np.save(f, np.zeros((40, 2), np.float32))
    for name in (LAYOUT_OUT, LAYOUT_HUGE):  # the PCA layout the worker wrote, which the page reads first
        folder = os.path.join(root, name, layout.CACHE_DIR, "projections")
        (path,) = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".npy")]  # beside it: its .seal
        os.remove(path)
        if name == LAYOUT_OUT:
            os.symlink(os.path.join(outside, "layout.npy"), path)
        else:
            with open(path, "wb") as f:
                f.truncate(1 << 40)  # 1 TB, sparse: no disk
    return root


def app(root, monkeypatch, page: str, runs=ALL, **params) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", root)
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    monkeypatch.setenv("CONTRASTSCOPE_UMAP_WARMUP", "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.session_state["runs"] = list(runs)
    if page != "pages/home.py":
        at.switch_page(page)
    at.query_params.update(params)
    at.run()
    return at


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


@pytest.mark.parametrize("bad", [*CONFIGS, LINKED])
@pytest.mark.parametrize("page, param", [("pages/live.py", None), ("pages/collapse.py", "collapse_run")])
def test_a_refused_config_is_an_error_card_not_an_exception(root, monkeypatch, page, param, bad):
    at = app(root, monkeypatch, page, runs=(GOOD, bad), **({param: bad} if param else {}))
    assert not at.exception, [e.value for e in at.exception]
    assert md(bad) in errors(at) and md("config.json") in errors(at)
    assert errors(at).count("could not be loaded") == 1  # one card for the run, however many parts of the page read it
    assert GOOD not in errors(at)


@pytest.mark.parametrize(
    "edit, alive",
    [
        ({"last_error_at": 1e20, "last_error": "boom"}, True),
        ({"last_error_at": "yesterday", "last_error": ["x"], "done": "3", "total": -1, "current": "r"}, True),
        ({"heartbeat": 1e300}, False),
        ({"heartbeat": float("nan")}, False),
        ({"heartbeat": True, "state": {"a": 1}, "current": {"run": 5, "step": "x"}}, False),
    ],
)
def test_home_on_a_worker_json_of_wrong_types(root, monkeypatch, tmp_path, edit, alive):
    """Each field of the wrong type or out of range costs that field: the page draws, a far-future heartbeat
    reads as a dead worker ("not running"), the error expander never asks time.localtime for year 10^12."""
    home = str(tmp_path / "root")
    os.makedirs(os.path.join(home, layout.CACHE_DIR))
    shutil.copytree(os.path.join(root, GOOD), os.path.join(home, GOOD))
    state = {
        "pid": 1,
        "heartbeat": time.time(),
        "state": "idle",
        "current": None,
        "done": 0,
        "total": 0,
        "last_error": None,
        "last_error_at": None,
        "failed_requests": {},
        **edit,
    }
    with open(os.path.join(home, layout.CACHE_DIR, worker.STATUS_FILE), "w") as f:
        f.write(json.dumps(state, allow_nan=True))
    at = app(home, monkeypatch, "pages/home.py", runs=())
    assert not at.exception, [e.value for e in at.exception]
    line = next(c.value for c in at.caption if "Background worker" in c.value)
    assert ("idle" in line) == alive and ("not running" in line) == (not alive), line
    assert GOOD in list(at.dataframe[0].value["run"])


def test_geometry_with_every_snapshot_of_a_run_unreadable(root, monkeypatch):
    """The run's records are errors (no alignment, no uniformity): its warning names the file; the plane draws
    the good run."""
    at = app(root, monkeypatch, "pages/geometry.py", runs=(GOOD, UNREADABLE), geometry_run=UNREADABLE)
    assert not at.exception, [e.value for e in at.exception]
    assert any(md("embeddings.npy") in w.value for w in at.warning)
    plane = next(c for c in at.get("plotly_chart") if "uniformity" in c.proto.spec.lower())
    assert GOOD in plane.proto.spec and UNREADABLE not in json.dumps(
        [t.get("name") for t in json.loads(plane.proto.spec)["data"]]
    )


@pytest.mark.parametrize(
    "bad, says", [(LAYOUT_OUT, "outside the runs root"), (LAYOUT_HUGE, ""), (NO_N, "differs from embeddings")]
)
def test_projections_on_a_hostile_layout_or_sidecar(root, monkeypatch, bad, says):
    """A layout symlinked out of the root or a 1 TB sparse layout is refused before any read and treated as
    a miss (drawn anew, never read); a sidecar with no `n` and positives of
    another length is the record's error. The good run's projection still draws."""
    at = app(root, monkeypatch, "pages/projections.py", runs=(GOOD, bad), proj_run=bad)
    assert not at.exception, [e.value for e in at.exception]
    if bad in (LAYOUT_OUT, LAYOUT_HUGE):  # runformat.derived refuses the file before any read (linked out, or
        # over the bytes its shape needs): a cache miss, so the page draws the layout anew, never the file's bytes
        assert at.get("plotly_chart") and not errors(at), errors(at)
    else:
        assert md(bad) in errors(at) and md(says) in errors(at), errors(at)
    at = app(root, monkeypatch, "pages/projections.py", runs=(GOOD, bad), proj_run=GOOD)
    assert not at.exception and not at.error and at.get("plotly_chart")


def test_live_names_metric_keys_past_the_bound_and_draws_the_rest(tmp_path, monkeypatch):
    """303 distinct keys (300 extras, step, wall_time, the loss): the first 256 are read, Live warns about the
    47 others by name and still draws the loss."""
    root = str(tmp_path)
    with RunWriter(root, "many-keys") as w:
        for step in range(300):
            w.log_metrics(step, {"loss/total": 1.0 / (1 + step), f"extra/k{step:03d}": 1.0})
    at = app(root, monkeypatch, "pages/live.py", runs=("many-keys",), live_paused="true")
    assert not at.exception, [e.value for e in at.exception]
    warning = next(w.value for w in at.warning if "metric key" in w.value)
    assert "47 metric keys skipped" in warning and md("extra/k253") in warning, warning
    assert "total" in " ".join(
        t.get("name", "") for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]
    )


def test_home_fingerprint_moves_only_when_what_home_shows_changed(tmp_path, monkeypatch):
    """The idle tick's test (dashboard/home_refresh): the same files give the same fingerprint; a note, a
    metrics line, a new run, a worker.json state each move it."""
    from dashboard import home_refresh

    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(tmp_path))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    _write(str(tmp_path), "a", np.random.default_rng(0))
    first = home_refresh.fingerprint()
    assert home_refresh.fingerprint() == first
    from diagnostics import open_run

    open_run(str(tmp_path / "a")).save_notes("seen")
    second = home_refresh.fingerprint()
    assert second != first
    with open(tmp_path / "a" / layout.METRICS_FILE, "a") as f:
        f.write('{"step": 11, "loss/total": 0.1}\n')
    third = home_refresh.fingerprint()
    assert third != second
    _write(str(tmp_path), "b", np.random.default_rng(1))
    fourth = home_refresh.fingerprint()
    assert fourth != third and [name for name, _ in fourth[0]] == ["a", "b"]
    os.makedirs(tmp_path / layout.CACHE_DIR, exist_ok=True)
    with open(tmp_path / layout.CACHE_DIR / worker.STATUS_FILE, "w") as f:
        json.dump(
            {
                "heartbeat": time.time(),
                "state": "computing",
                "done": 0,
                "total": 2,
                "current": {"run": "b", "step": 0, "what": "record"},
            },
            f,
        )
    assert home_refresh.fingerprint() != fourth
