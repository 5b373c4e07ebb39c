"""The supervised background worker: a separate process, restarted with backoff when it dies, its last error
kept for Home; and a cold root whose pages show what is ready, then fill in once the worker has run."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from browser import REPO
from streamlit.testing.v1 import AppTest
from synthetic_runs import write_synthetic_run

from dashboard import worker_process
from dashboard.text import md
from dashboard.worker_process import Backoff, Supervisor
from diagnostics.work import worker


def wait_until(predicate, timeout_s: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_backoff_doubles_up_to_its_ceiling():
    b = Backoff(first_s=1.0, most_s=60.0)
    assert [b.delay(k) for k in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_killed_worker_is_restarted_and_its_error_kept():
    sleeper = [
        sys.executable,
        "-c",
        "import sys, time; print('starting up', file=sys.stderr, flush=True); time.sleep(600)",
    ]
    sup = Supervisor(sleeper, backoff=Backoff(first_s=0.2, most_s=1.0)).start()
    try:
        first = wait_until(lambda: sup.pid, what="the first start")
        wait_until(lambda: "starting up" in sup.stderr_tail(), what="its first stderr line")
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: sup.pid if sup.pid not in (None, first) else None, what="a restart")
        assert second != first and sup.starts == 2
        assert sup.last_error.startswith("worker killed by signal 9") and "starting up" in sup.last_error
        assert sup.state()["alive"]
    finally:
        sup.stop()
    assert sup.state()["alive"] is False  # stop() leaves nothing running
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


def test_a_worker_that_fails_at_once_backs_off():
    sup = Supervisor(
        [sys.executable, "-c", "raise SystemExit('bad root')"], backoff=Backoff(first_s=0.2, most_s=0.4)
    ).start()
    try:
        wait_until(lambda: sup.starts >= 3, what="three starts")
        assert "exited with status 1" in sup.last_error and "bad root" in sup.last_error
    finally:
        sup.stop()


def test_the_real_worker_measures_a_root_and_survives_a_kill(tmp_path, monkeypatch):
    write_synthetic_run(tmp_path, "a", n=60, steps=20, snapshot_every=10)
    monkeypatch.setenv(worker_process.WORKER_ENV, "1")
    sup = worker_process.ensure_worker(str(tmp_path))
    try:
        assert worker_process.ensure_worker(str(tmp_path)) is sup  # one per root per server
        first = wait_until(lambda: sup.pid, what="the worker to start")
        wait_until(lambda: (worker.status(str(tmp_path)) or {}).get("pid") == first, what="worker.json")
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: sup.pid if sup.pid not in (None, first) else None, timeout_s=30, what="a restart")
        from diagnostics import open_run
        from diagnostics.store import record

        run = open_run("a", root=str(tmp_path))
        wait_until(lambda: len(record.ready_steps(run)) == 3, timeout_s=120, what="the three records")
        assert second != first
    finally:
        sup.stop()
        worker_process._supervisors.pop(os.path.abspath(str(tmp_path)), None)


def test_a_cold_root_shows_progress_then_fills_in(tmp_path, monkeypatch):
    write_synthetic_run(tmp_path, "cold", n=60, steps=20, snapshot_every=10)
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(tmp_path))
    monkeypatch.setenv(worker_process.WORKER_ENV, "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state["runs"] = ["cold"]
    at.switch_page("pages/geometry.py").run()
    assert not at.exception
    assert not at.get("plotly_chart")  # nothing measured yet: no figure, and no computing in the page
    assert any("3 snapshots still being measured" in c.value for c in at.caption)
    assert any(md("Background worker: not running") in c.value for c in at.caption)
    worker.watch(str(tmp_path), once=True)
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 2 and not any("still being measured" in c.value for c in at.caption)


def test_before_the_first_page_has_drawn_the_worker_reads_starting(tmp_path, monkeypatch):
    """app.py starts the supervisor after the first page: that page says "starting", not "start one"."""
    from dashboard import pending

    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(tmp_path))
    monkeypatch.delenv(worker_process.WORKER_ENV, raising=False)
    assert worker_process.supervisor(str(tmp_path)) is None
    line, _ = pending.progress_line()
    assert line.startswith("Background worker: starting")
    monkeypatch.setenv(worker_process.WORKER_ENV, "0")  # switched off: the user must start one
    line, _ = pending.progress_line()
    assert "not running; start one with" in line


def test_a_relative_runs_root_is_watched_where_the_server_runs(tmp_path, monkeypatch):
    """The worker child runs in the clone: `--runs sample_runs` from a copy watched the clone's own sample_runs
    (and cached into it). A relative root is made absolute against the server's folder first."""
    started = []

    class Recorder:
        def __init__(self, command, **kwargs):
            started.append(command)

        def start(self):
            return self

    monkeypatch.setenv(worker_process.WORKER_ENV, "1")
    monkeypatch.setattr(worker_process, "Supervisor", Recorder)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myruns").mkdir()
    try:
        sup = worker_process.ensure_worker("myruns")
        assert started[0][-2:] == ["watch", str(tmp_path / "myruns")]
        assert (
            worker_process.supervisor("myruns") is sup and worker_process.ensure_worker(str(tmp_path / "myruns")) is sup
        )
        worker_process.ensure_worker("s3://bucket/runs")  # a URL is passed as it is
        assert started[1][-2:] == ["watch", "s3://bucket/runs"]
    finally:
        worker_process._supervisors.pop(str(tmp_path / "myruns"), None)
        worker_process._supervisors.pop("s3://bucket/runs", None)
