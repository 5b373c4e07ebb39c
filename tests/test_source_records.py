"""Records at the source: RunWriter(measure_snapshots=MeasureSnapshots()) writes the worker's own records
(same key, same file), skips over-budget snapshots with a note, and leaves the writer numpy-only otherwise."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from diagnostics.store import record
from diagnostics.work import worker
from diagnostics.work.source_records import MeasureSnapshots
from runformat.reader import open_run
from runformat.writer import RunWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(root, name, measure, steps=(0, 10, 20), n=300, d=16):
    with RunWriter(
        str(root), name, {"description": "source", "contrastive": {"temperature": 0.2}}, measure_snapshots=measure
    ) as w:
        for step in steps:
            z = np.random.default_rng(step).standard_normal((n, d)).astype(np.float32)
            w.log_snapshot(step, embeddings=z, positives=z + 0.1, labels=np.arange(n) % 3)
            w.log_metrics(step, {"loss": 1.0})
    return open_run(os.path.join(str(root), name))


@pytest.mark.parametrize("in_process", [None, True])  # None on a CPU: a child process; True: the thread (CUDA's)
def test_every_committed_snapshot_gets_the_workers_record(tmp_path, in_process):
    measure = MeasureSnapshots(max_pending=10, in_process=in_process)
    run = _write(tmp_path, "src", measure)
    assert measure.measured == [0, 10, 20] and measure.skipped == []
    inodes = {s: os.stat(os.path.join(record.load(run, s).folder, "record.json")).st_ino for s in (0, 10, 20)}
    worker.watch(str(tmp_path), once=True)  # finds them done: same key, same folder, not rewritten
    assert {s: os.stat(os.path.join(record.load(run, s).folder, "record.json")).st_ino for s in (0, 10, 20)} == inodes
    again = record.compute(run, 20)  # what the worker would have written
    assert again.numbers == record.load(run, 20).numbers
    assert not os.listdir(os.path.join(run.path, ".cache", "leases"))


def test_a_snapshot_over_the_budget_is_left_to_the_worker_with_a_note(tmp_path):
    measure = MeasureSnapshots(max_cells=100 * 16)
    run = _write(tmp_path, "big", measure, steps=(0,), n=300)
    assert measure.measured == [] and record.load(run, 0) is None
    notes = json.load(open(os.path.join(run.path, "run.json")))["measure_notes"]
    assert notes[0]["step"] == 0 and "over the writer's budget" in notes[0]["note"]
    worker.watch(str(tmp_path), once=True)
    assert record.load(run, 0) is not None


def test_the_writer_alone_stays_numpy_only():
    code = (
        "import sys; from runformat.writer import RunWriter; "
        "bad = [m for m in ('torch', 'diagnostics', 'pandas') if m in sys.modules]; assert not bad, bad"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_a_measuring_process_that_dies_costs_its_step_only(tmp_path):
    import time

    measure = MeasureSnapshots(max_pending=10)  # on a CPU: a child process
    rng = np.random.default_rng(0)
    with RunWriter(str(tmp_path), "dies", {"contrastive": {"temperature": 0.2}}, measure_snapshots=measure) as w:
        z = rng.standard_normal((300, 16)).astype(np.float32)
        w.log_snapshot(0, embeddings=z, positives=z + 0.1, labels=np.arange(300) % 3)
        deadline = time.monotonic() + 120
        while measure.measured != [0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert measure.measured == [0]
        measure._child.proc.kill()  # killed for memory, say
        measure._child.proc.wait()
        w.log_snapshot(10, embeddings=z, positives=z + 0.1, labels=np.arange(300) % 3)
    assert measure.measured == [0, 10] and measure.skipped == []  # a fresh child measured the next step
