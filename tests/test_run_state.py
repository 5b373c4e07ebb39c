"""The run state Home shows: written by the worker, read by dashboard.data.run_state when it is of the run's
current records, else computed the same way (a stale, corrupt or hostile file never changes the answer)."""

import json
import os

import numpy as np
import pytest
import streamlit as st

from dashboard import data
from diagnostics import open_run
from diagnostics.judge import run_state
from diagnostics.work import worker
from runformat import layout
from runformat.writer import RunWriter

N, D = 40, 8


def write_run(root, name, steps=(0, 10, 20), collapse_from=10):
    """Healthy at first, every point the same from `collapse_from` on (complete collapse)."""
    rng = np.random.default_rng(0)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.2}}) as w:
        for step in steps:
            w.log_metrics(step, {"loss/total": 1.0})
            add_snapshot(w, step, rng, collapsed=step >= collapse_from)
    return open_run(os.path.join(str(root), name))


def add_snapshot(w, step, rng, collapsed):
    z = np.tile(rng.standard_normal((1, D)), (N, 1)) if collapsed else rng.standard_normal((N, D))
    z = z.astype(np.float32)
    w.log_snapshot(step, embeddings=z, positives=z + np.float32(0.01), labels=np.arange(N) % 4)


def state_file(run):
    return run.file(layout.CACHE_DIR, layout.RUN_STATE_FILE)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Home's loader on `tmp_path`, with Streamlit's caches empty (a first visit)."""
    monkeypatch.setenv(data.RUNS_ENV, str(tmp_path))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield lambda name: (st.cache_data.clear(), data.run_state(name))[1]
    st.cache_data.clear()
    st.cache_resource.clear()


def computed(run):
    """The state computed from the records now, the way a reader without the file does."""
    return run_state.state_of(run, run_state.listing(run)[1])


def test_the_worker_writes_the_state_home_reads_without_computing(tmp_path, home, monkeypatch):
    run = write_run(tmp_path, "slide")
    worker.watch(str(tmp_path), once=True)
    kept = json.loads(open(state_file(run)).read())
    assert kept["listing"] == {"steps": [0, 10, 20], "records": list(run_state.listing(run)[1])}
    expected = computed(run)
    assert kept["state"] == expected and expected["pending"] == [] and expected["latest"]["step"] == 20
    assert expected["verdict"] == "complete_collapse" and expected["since"] == 10
    monkeypatch.setattr(run_state, "state_of", lambda *a: pytest.fail("Home computed a state the worker kept"))
    assert home("slide") == expected


def test_a_new_record_makes_the_kept_state_stale(tmp_path, home, monkeypatch):
    run = write_run(tmp_path, "slide", steps=(0, 10), collapse_from=99)
    worker.watch(str(tmp_path), once=True)
    assert home("slide")["verdict"] == "healthy"
    with RunWriter(str(tmp_path), "slide", resume=True) as w:
        add_snapshot(w, 20, np.random.default_rng(1), collapsed=True)
    assert home("slide")["pending"] == [20]  # a new snapshot, no record yet: the kept state is not used
    from diagnostics.store import record

    record.compute(run, 20)  # a record lands without the worker rewriting the state: still not used
    calls = []
    real = run_state.state_of
    monkeypatch.setattr(run_state, "state_of", lambda *a: calls.append(1) or real(*a))
    state = home("slide")
    assert calls and state == real(run, run_state.listing(run)[1])
    assert (
        state["pending"] == [] and state["latest"]["step"] == 20 and state["latest"]["verdict"] == "complete_collapse"
    )


@pytest.mark.parametrize(
    "hostile",
    [
        b"{not json",
        b"[" * 100_000,  # deeper than the reader's bound
        b"{}",
        b'{"listing": {"steps": [0, 10, 20], "records": []}, "state": null}',  # another listing
        "oversize",
        "healthy",  # the right listing, a state of another shape
        "since",  # the right listing, a step the run has not
    ],
)
def test_a_corrupt_or_hostile_file_is_ignored_and_the_state_computed(tmp_path, home, hostile):
    run = write_run(tmp_path, "slide")
    worker.watch(str(tmp_path), once=True)
    expected = computed(run)
    steps, records = run_state.listing(run)
    listing = {"steps": list(steps), "records": list(records)}
    if hostile == "oversize":
        hostile = b" " * (run_state.MAX_BYTES + 1) + json.dumps({"listing": listing, "state": None}).encode()
    elif hostile == "healthy":
        hostile = json.dumps({"listing": listing, "state": {"verdict": "healthy", "since": 0}}).encode()
    elif hostile == "since":
        hostile = json.dumps({"listing": listing, "state": {**expected, "since": 5}}).encode()
    with open(state_file(run), "wb") as f:
        f.write(hostile)
    assert run_state.load(run, steps, records) == (False, None)
    assert home("slide") == expected and expected["verdict"] == "complete_collapse"


def test_the_worker_rewrites_a_stale_state_and_skips_a_fresh_one(tmp_path):
    run = write_run(tmp_path, "slide")
    worker.watch(str(tmp_path), once=True)
    planner = worker._Planner(str(tmp_path))
    assert [t.kind for t in planner.plan()[0]] == []  # every record, state and layout is there
    with open(state_file(run), "w") as f:
        f.write("{}")
    assert planner.plan()[0] == []  # checked once per listing: a pass over an unchanged root reads no file
    assert [(t.kind, t.step) for t in worker._Planner(str(tmp_path)).plan()[0]] == [("state", 20)]
    worker.watch(str(tmp_path), once=True)
    assert run_state.load(run, *run_state.listing(run)) == (True, computed(run))
