"""The worker pool: leases (taken once, stale ones taken over with a note), several watchers on one root
computing each record once, kill -9 mid-record, task budgets, projection parameter ranges, viewed runs first."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from diagnostics.store import record
from diagnostics.work import lease, sandbox, task_limits, viewing, worker
from diagnostics.work.planner import Planner
from runformat.layout import Storage
from runformat.reader import open_run
from runformat.writer import RunWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_run(root, name, steps=(0, 10), n=64, d=8):
    with RunWriter(str(root), name, {"description": "pool test", "contrastive": {"temperature": 0.2}}) as w:
        for step in steps:
            z = np.random.default_rng(step).standard_normal((n, d)).astype(np.float32)
            w.log_snapshot(step, embeddings=z, positives=z + 0.1, labels=np.arange(n) % 4)
    return open_run(os.path.join(str(root), name))


def test_a_lease_is_taken_once_renewed_and_released(tmp_path):
    storage = Storage(str(tmp_path))
    path = lease.lease_path(storage, "a", 10)
    first, why = lease.acquire(storage, path, "record")
    assert first is not None and why is None and first.notes == []
    second, why = lease.acquire(storage, path, "record")
    assert second is None and f"pid {os.getpid()}" in why
    assert first.renew()
    body = json.loads(open(path).read())
    assert body["token"] == first.token and body["expires_at"] > time.time() + lease.TTL_S - 5
    first.release()
    assert not os.path.exists(path)
    assert lease.acquire(storage, path, "record")[0] is not None


@pytest.mark.parametrize(
    "stale, why",
    [  # bodies built at test time: a lease's times are relative to now
        (lambda now: b"\x00garbage{", "garbage"),
        (
            lambda now: json.dumps(
                {"token": "t", "host": lease.HOST, "pid": 1, "written_at": now + 10**6, "expires_at": now + 10**6}
            ).encode(),
            "future",
        ),
        (
            lambda now: json.dumps(
                {"token": "t", "host": lease.HOST, "pid": 2**22 + 12345, "written_at": now, "expires_at": now + 20}
            ).encode(),
            "not running",
        ),
        (
            lambda now: json.dumps(
                {"token": "t", "host": "elsewhere", "pid": 1, "written_at": now - 100, "expires_at": now - 50}
            ).encode(),
            "expired",
        ),
    ],
    ids=["garbage", "future", "dead-pid", "expired"],
)
def test_a_stale_lease_is_taken_over_with_a_note(tmp_path, stale, why):
    storage = Storage(str(tmp_path))
    path = lease.lease_path(storage, "a", 10)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(stale(time.time()))
    got, _ = lease.acquire(storage, path, "record")
    assert got is not None and len(got.notes) == 1 and why in got.notes[0] and path in got.notes[0]
    assert json.loads(open(path).read())["token"] == got.token
    assert not [n for n in os.listdir(os.path.dirname(path)) if ".break-" in n or n.startswith(".tmp")]


def test_a_live_lease_of_another_host_stands_and_a_fifo_in_its_place_is_garbage(tmp_path):
    storage = Storage(str(tmp_path))
    path = lease.lease_path(storage, "a", 10)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump(
            {"token": "t", "host": "elsewhere", "pid": 1, "written_at": time.time(), "expires_at": time.time() + 20}, f
        )
    assert lease.acquire(storage, path, "record") == (None, "held by elsewhere pid 1")
    os.unlink(path)
    os.mkfifo(path)
    got, _ = lease.acquire(storage, path, "record")  # would block for ever if it were opened for reading
    assert got is not None and "garbage" in got.notes[0]


def test_a_failure_stands_until_the_inputs_change_or_its_retry_is_due(tmp_path):
    storage = Storage(str(tmp_path))
    path = lease.lease_path(storage, "a", 10)
    held, _ = lease.acquire(storage, path, "record", inputs=["x", 1, 2])
    held.fail("over budget", ["x", 1, 2])
    assert lease.acquire(storage, path, "record", inputs=["x", 1, 2]) == (None, "failed: over budget")
    assert lease.failure(storage, "a", 10)["message"] == "over budget"
    assert lease.acquire(storage, path, "record", inputs=["x", 1, 3])[0] is not None  # the snapshot changed
    again, _ = lease.acquire(storage, path, "record", inputs=["x", 1, 3])
    assert again is None
    os.unlink(path)
    held, _ = lease.acquire(storage, path, "record", inputs=["x"])
    held.fail("disk full", ["x"], retry_in_s=0.0)
    retry, _ = lease.acquire(storage, path, "record", inputs=["x"])
    assert retry is not None and retry.attempts == 1 and "retry" in retry.notes[0]


def _watch(root, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "diagnostics", "watch", str(root), "--poll", "0.2", *extra],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _computed(run) -> dict:
    """step -> inode of record.json (a record written twice gets a new inode: atomic replace)."""
    out = {}
    for step in run.snapshot_steps():
        rec = record.load(run, step)
        if rec is not None:
            out[step] = os.stat(os.path.join(rec.folder, "record.json")).st_ino
    return out


def test_two_watchers_on_one_root_compute_each_record_once(tmp_path):
    runs = [write_run(tmp_path, f"r{i}", steps=(0, 10, 20)) for i in range(2)]
    procs = [_watch(tmp_path, "--once"), _watch(tmp_path, "--once", "--workers", "2")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    first = [_computed(r) for r in runs]
    assert all(sorted(c) == [0, 10, 20] for c in first)
    # each record was written by exactly one process: a second writer would have replaced record.json (new
    # inode) or left an older record folder; every record folder of a step is the one record.load reads
    for run in runs:
        folders = os.listdir(os.path.join(run.path, ".cache", "records"))
        assert len(folders) == 3
    assert not any(
        n.endswith(".json") and "-record" in n
        for r in runs
        for n in os.listdir(os.path.join(r.path, ".cache", "leases"))
    )


def test_kill_9_mid_record_loses_nothing_and_the_next_worker_takes_over(tmp_path):
    run = write_run(tmp_path, "big", steps=(0,), n=6000, d=64)
    proc = _watch(tmp_path)
    leases_dir = os.path.join(run.path, ".cache", "leases")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.isdir(leases_dir) and os.listdir(leases_dir)):
        time.sleep(0.05)
    assert os.listdir(leases_dir), "the worker never took the lease"
    time.sleep(0.5)  # mid-record
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert record.load(run, 0) is None  # nothing half-written is read as a record
    start = time.time()
    worker.watch(str(tmp_path), once=True)  # same host, dead pid: taken over at once, not after the TTL
    assert record.load(run, 0) is not None and record.load(run, 0).error is None
    assert time.time() - start < lease.TTL_S + 60
    notes = worker.status(str(tmp_path))["notes"]
    assert any("not running" in n for n in notes), notes


def test_an_oversized_snapshot_is_refused_before_loading_and_kept_as_its_failure(tmp_path):
    run = write_run(tmp_path, "huge", steps=(0,))
    budget = task_limits.TaskBudget(seconds=60, memory_bytes=2 * 2**30)
    info = run.snapshot_info(0)
    info["fields"]["embeddings"]["shape"] = [60_000_000, 8]  # item 8: 1.9 GB declared, inside the reader's bound
    assert "over the worker's task memory budget" in task_limits.record_over_budget(info, budget)
    path = os.path.join(run.path, "snapshots", f"{0:010d}.json")
    body = json.load(open(path))
    body["fields"]["embeddings"]["shape"] = [60_000_000, 8]
    with open(path, "w") as f:
        json.dump(body, f)
    worker.watch(str(tmp_path), once=True, budget=budget)
    failed = lease.failure(Storage(str(tmp_path)), "huge", 0)
    assert failed and "memory budget" in failed["message"] and record.load(run, 0) is None
    st = worker.status(str(tmp_path))
    assert "memory budget" in st["last_error"] and "shape" not in st["last_error"]  # its projection: refused too
    os.unlink(os.path.join(tmp_path, ".cache", "workers", os.listdir(tmp_path / ".cache" / "workers")[0]))
    worker.watch(str(tmp_path), once=True, budget=budget)
    assert worker.status(str(tmp_path))["last_error"] is None  # the kept failure stands: not tried again


def _outcome(slot):
    while (outcome := slot.poll()) is None:
        time.sleep(0.05)
    return outcome


def test_a_slot_kills_a_task_past_its_time_or_memory_budget_and_lives_on():
    slot = sandbox.Slot(task_limits.TaskBudget(seconds=3, memory_bytes=2**40), time.sleep)
    try:
        started = time.monotonic()
        slot.start("hang", 10**6)  # time.sleep(10**6) in the child: a hung read
        outcome = _outcome(slot)
        assert outcome.killed and "time budget of 3 s" in outcome.message and 3 <= time.monotonic() - started < 30
        # the next task gets a fresh child (the runner is fixed per child)
        slot.runner, slot.budget = os.urandom, task_limits.TaskBudget(seconds=120, memory_bytes=300 * 2**20)
        slot.start("grow", 2 * 2**30)  # os.urandom(2 GiB): resident memory grows past 300 MiB
        outcome = _outcome(slot)
        assert outcome.killed and "memory budget" in outcome.message, outcome
        slot.start("small", 16)
        assert _outcome(slot).ok and slot.proc.is_alive()  # a child that finishes lives on for the next task
    finally:
        slot.close()


def test_a_fifo_in_a_snapshot_does_not_hold_the_worker(tmp_path):
    run = write_run(tmp_path, "fifo", steps=(0,))
    arr = os.path.join(run.path, "snapshots", f"{0:010d}", "embeddings.npy")
    os.unlink(arr)
    os.mkfifo(arr)  # item 5: a read of it blocks for ever
    started = time.time()
    worker.watch(str(tmp_path), once=True, budget=task_limits.TaskBudget(seconds=8, memory_bytes=4 * 2**30))
    assert time.time() - started < 120
    st = worker.status(str(tmp_path))
    failed = lease.failure(Storage(str(tmp_path)), "fifo", 0)
    assert (failed and "time budget" in failed["message"]) or record.load(run, 0) is not None, st
    if failed:
        again = time.time()
        worker.watch(str(tmp_path), once=True, budget=task_limits.TaskBudget(seconds=8))
        assert time.time() - again < 8  # not retried in a loop


def test_projection_parameters_are_checked_against_their_ranges(tmp_path):
    write_run(tmp_path, "a")
    with pytest.raises(ValueError, match="n_iter"):
        worker.request_projection(str(tmp_path), "a", 10, "tsne", params={"n_iter": 1e9})
    with pytest.raises(ValueError, match="takes"):
        worker.request_projection(str(tmp_path), "a", 10, "tsne", params={"evil": 1})
    folder = tmp_path / ".cache" / "requests"
    folder.mkdir(parents=True)
    forged = {"run": "a", "step": 10, "method": "tsne", "source": "embeddings", "params": {"n_iter": 1e9}}
    (folder / ("f" * 24 + ".json")).write_text(json.dumps(forged))  # request-shaped: other names are never read
    tasks, bad = Planner(str(tmp_path)).plan()
    assert not [t for t in tasks if t.request] and "n_iter" in bad[0][1]
    assert task_limits.check_projection_params("umap", {"n_neighbors": 15.0}) == {"n_neighbors": 15}


def test_the_viewed_run_comes_first(tmp_path):
    for i in range(4):
        write_run(tmp_path, f"r{i}")
        time.sleep(0.02)
    viewing.show_runs(str(tmp_path), ["r0"], "session-1")
    tasks, _ = Planner(str(tmp_path)).plan(viewing.viewed_runs(str(tmp_path)))
    assert [(t.run.name, t.step) for t in tasks[:3]] == [("r0", 10), ("r0", 0), ("r3", 10)]
    assert viewing.viewed_runs(str(tmp_path), now=time.time() + viewing.FRESH_S + 1) == ()  # a closed tab


def test_workers_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match="--workers"):
        worker.watch(str(tmp_path), workers=0)


def test_the_cores_are_shared_between_every_live_worker_of_this_host_on_the_root(tmp_path, monkeypatch):
    """Two watchers of 2 torch threads each on 2 cores spin-waited on each other (3.06x the wall of one): each
    task's threads are the cores // the task processes of every live worker here on this root."""
    import socket

    from diagnostics.work import worker_status

    folder = tmp_path / ".cache" / worker_status.WORKERS_DIR
    folder.mkdir(parents=True)
    host, now = socket.gethostname(), time.time()

    def status(pid, slots, heartbeat=now, name_host=host):
        body = {"pid": pid, "host": name_host, "slots": slots, "heartbeat": heartbeat, "state": "idle"}
        (folder / f"{name_host}-{pid}.json").write_text(json.dumps(body))

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status(os.getpid(), 3)  # live: counts its 3 task processes
    status(dead.pid, 4)  # its pid is gone
    status(os.getppid(), 5, heartbeat=now - 60)  # alive but silent for a minute
    status(os.getppid(), 6, name_host="another-host")  # another machine's cores are not ours
    (folder / "settings.json").write_text("{}")  # not a status file's name
    assert worker_status.host_slots(str(tmp_path)) == 3

    class Local:
        threads = 1

    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    assert worker._threads(Local(), str(tmp_path)) == 4  # 12 cores // 3 live task processes
    Local.threads = 6  # this pool alone has more than the status files say (not yet written)
    assert worker._threads(Local(), str(tmp_path)) == 2
    Local.threads = None  # in-process or a cluster slot: torch's own default
    assert worker._threads(Local(), str(tmp_path)) is None
