"""diagnostics.work.worker: computes every record and default layout of a root, requests first, never dies."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from diagnostics import open_run
from diagnostics.store import cache, record
from diagnostics.work import worker
from runformat.writer import RunWriter

N, D = 40, 8


def write_run(root, name, steps=(0, 10), bad_last=False):
    rng = np.random.default_rng(0)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.2}}) as w:
        for step in steps:
            z = rng.standard_normal((N, D)).astype(np.float32)
            if bad_last and step == steps[-1]:
                z[:] = np.nan
            w.log_metrics(step, {"loss/total": 1.0})
            w.log_snapshot(step, embeddings=z, positives=z + 0.1, labels=np.arange(N) % 4)
    return open_run(os.path.join(str(root), name))


def test_watch_once_fills_every_record_and_the_default_layout(tmp_path):
    good, bad = write_run(tmp_path, "good"), write_run(tmp_path, "bad", bad_last=True)
    assert worker.status(str(tmp_path)) is None
    worker.watch(str(tmp_path), once=True)
    for run in (good, bad):
        assert record.ready_steps(run) == [0, 10]
        assert cache.projection_if_ready(run, 10) is not None  # PCA of the latest snapshot, seed 0
        assert cache.projection_if_ready(run, 0) is None  # only the latest one by default
    assert "finite" in record.load(bad, 10).error
    st = worker.status(str(tmp_path))
    assert st["state"] == "idle" and st["current"] is None and st["pid"] == os.getpid()
    assert abs(st["heartbeat"] - time.time()) < 60 and st["last_error"] is None


def test_plan_order_requests_then_newest_records_then_layouts(tmp_path):
    a = write_run(tmp_path, "a")
    time.sleep(0.05)
    b = write_run(tmp_path, "b", steps=(0, 5))
    worker.request_projection(str(tmp_path), "a", 0, "pca", "embeddings", 1, None, None)
    worker.request_projection(str(tmp_path), "a", 0, "pca", "embeddings", 1, None, None)  # idempotent
    assert len(os.listdir(tmp_path / ".cache" / "requests")) == 1
    tasks, bad = worker._Planner(str(tmp_path)).plan()
    assert bad == []
    order = [(t.kind, t.run.name, t.step) for t in tasks]
    assert order[0] == ("projection", "a", 0) and tasks[0].seed == 1
    assert order[1:5] == [("record", "b", 5), ("record", "b", 0), ("record", "a", 10), ("record", "a", 0)]
    assert order[5:] == [("state", "a", 10), ("state", "b", 5), ("projection", "a", 10), ("projection", "b", 5)]
    worker.watch(str(tmp_path), once=True)
    assert not os.listdir(tmp_path / ".cache" / "requests")  # done requests are removed
    assert cache.projection_if_ready(a, 0, seed=1) is not None and record.ready_steps(b) == [0, 5]


def test_bad_requests_and_failing_tasks_are_reported_not_fatal(tmp_path, monkeypatch):
    write_run(tmp_path, "a")
    folder = tmp_path / ".cache" / "requests"
    folder.mkdir(parents=True)
    (folder / f"{'a' * 24}.json").write_text("[" * 5000)  # request-shaped names (worker.REQUEST_NAME)
    (folder / "settings.json").write_text("{}")  # not a request the worker wrote: never read nor removed
    (folder / f"{'b' * 24}.json").write_text(
        json.dumps({"run": "../../etc", "step": 0, "method": "pca", "source": "embeddings"})
    )
    with pytest.raises(Exception):  # noqa: B017
        worker.request_projection(str(tmp_path), "../outside", 0)
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise RuntimeError("projection library exploded")

    monkeypatch.setattr(cache, "project", broken)
    worker.watch(str(tmp_path), once=True, isolate=False)  # in this process, so the patch applies
    st = worker.status(str(tmp_path))
    assert "exploded" in st["last_error"] and st["state"] == "idle" and len(calls) == 1  # not retried
    assert os.listdir(folder) == ["settings.json"]
    assert record.ready_steps(open_run(str(tmp_path / "a"))) == [0, 10]


def test_a_broken_sidecar_does_not_stop_the_other_runs(tmp_path):
    broken, good = write_run(tmp_path, "broken"), write_run(tmp_path, "good")
    with open(os.path.join(broken.path, "snapshots", f"{10:010d}.json"), "w") as f:
        f.write("{not json")
    worker.watch(str(tmp_path), once=True)
    assert record.ready_steps(good) == [0, 10] and record.ready_steps(broken) == [0]
    assert "broken" in worker.status(str(tmp_path))["last_error"]


def test_watch_command_line(tmp_path):
    run = write_run(tmp_path, "a")
    proc = subprocess.run(
        [sys.executable, "-m", "diagnostics", "watch", str(tmp_path), "--once"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert proc.returncode == 0, proc.stderr
    assert record.ready_steps(run) == [0, 10]
    proc = subprocess.run(
        [sys.executable, "-m", "diagnostics", "watch", str(tmp_path / "nope"), "--once"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert proc.returncode == 2 and "nope" in proc.stderr
