"""diagnostics.store.record's key: what the numbers are a function of, never the source bytes. A golden record holds
the numbers ENGINE_VERSION stands for; a comment in the engine or another copy of the code keeps every record;
a version bump recomputes while the older record is served marked stale, and removed only once replaced."""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from diagnostics import open_run
from diagnostics.judge.summary import ready_summaries
from diagnostics.measure import engine
from diagnostics.store import cache, record
from diagnostics.work import worker
from runformat.writer import RunWriter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden_record.json")
REGENERATE_ENV = "CONTRASTSCOPE_REGENERATE_GOLDEN"
N, D = 64, 16
# Tolerance: every number is a mean or a log-mean-exp over at most N² = 4,096 float32 pair terms, each a
# D = 16-term dot product. Recursive float32 summation of m terms errs by at most m·u (u = 2^-24, Higham
# §4.2) relative, whatever the order, tiling or thread count: (D + N²)·u = 2.5e-4. A real change of a number
# (another estimator, another sample, another default) moves it by far more.
TOL = (D + N * N) * 2.0**-24


def golden_run(root, name="golden"):
    """A small fixed snapshot, made the same way on every machine (numpy's PCG64 with seed 0)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((N, D)).astype(np.float32)
    y = (z + rng.standard_normal((N, D)).astype(np.float32)).astype(np.float32)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.2}}) as w:
        w.log_metrics(0, {"loss/total": 1.0})
        w.log_snapshot(0, embeddings=z, positives=y, labels=np.arange(N) % 4)
    return open_run(os.path.join(str(root), name))


def measured(rec) -> dict:
    """The golden numbers: every scalar, the histogram counts, and a checksum of each per-row array."""
    out = {k: v for k, v in rec.numbers.items() if k != "histograms"}
    out.update({f"hist.{k}": h["counts"] for k, h in sorted(rec.numbers["histograms"].items())})
    for name in sorted(record.ARRAY_DTYPES):
        arr = rec.array(name)
        if arr is not None:
            out[f"{name}.sum"] = float(np.asarray(arr, np.float64).sum())
    return out


def test_the_numbers_are_what_engine_version_says(tmp_path):
    got = measured(record.compute(golden_run(tmp_path), 0))
    if os.environ.get(REGENERATE_ENV):
        text = json.dumps({"engine_version": record.ENGINE_VERSION, "numbers": got}, indent=1, sort_keys=True)
        with open(GOLDEN, "w") as f:  # one line per histogram
            f.write(re.sub(r"\[[\d,\s]*\]", lambda m: re.sub(r"\s+", "", m.group()), text) + "\n")
    with open(GOLDEN) as f:
        golden = json.load(f)
    assert golden["engine_version"] == record.ENGINE_VERSION, (
        f"ENGINE_VERSION is {record.ENGINE_VERSION} but {GOLDEN} holds version {golden['engine_version']}'s "
        f"numbers: rerun this test with {REGENERATE_ENV}=1 and commit the fixture"
    )
    want = golden["numbers"]
    bump = f"; if the change is meant, bump diagnostics.store.record.ENGINE_VERSION and rerun with {REGENERATE_ENV}=1"
    assert set(got) == set(want), f"numbers added or removed: {set(got) ^ set(want)}{bump}"
    for key, value in want.items():
        if isinstance(value, list):  # histogram counts: a cosine within TOL of a bin edge may change bins
            assert sum(got[key]) == sum(value) and np.abs(np.subtract(got[key], value)).max() <= 1, key + bump
        elif isinstance(value, float) and not key.endswith(".sum"):
            assert got[key] == pytest.approx(value, rel=TOL, abs=TOL), key + bump
        elif isinstance(value, float):  # a sum of up to N·k float32 values, each within TOL
            assert got[key] == pytest.approx(value, rel=TOL, abs=TOL * N * 10), key + bump
        else:
            assert got[key] == value, key + bump


def test_the_key_is_the_inputs_of_the_numbers_and_names_no_file(tmp_path):
    inputs = record.key_inputs(golden_run(tmp_path), 0)
    assert set(inputs) == {"record_version", "engine_version", "config", "content", "temperature", "torch", "numpy"}
    assert inputs["temperature"] == 0.2 and inputs["engine_version"] == record.ENGINE_VERSION
    assert inputs["numpy"] == ".".join(np.__version__.split(".")[:2])
    text = json.dumps(inputs)
    assert ".py" not in text and REPO not in text and str(tmp_path) not in text
    assert not hasattr(record, "RECORD_CODE") and not hasattr(cache, "code_version")


CHILD = """
import sys, warnings
from diagnostics.store import record
from runformat.reader import open_run
run = open_run(sys.argv[1])
rec = record.load(run, 0)
print(record.__file__)
print(record.digest(record.key_inputs(run, 0)), rec is not None and rec.numbers == record.load(run, 0).numbers)
"""


def test_a_comment_in_the_engine_and_another_copy_of_the_code_keep_every_record(tmp_path):
    """A copy of the package elsewhere (as a wheel installs it), with a comment added to engine.py, computes
    the same key and reads the record this checkout wrote: nothing is recomputed."""
    run = golden_run(tmp_path / "runs")
    record.compute(run, 0)
    copy = tmp_path / "site-packages"
    for package in ("diagnostics", "runformat", "training", "contrastscope"):
        shutil.copytree(os.path.join(REPO, package), copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "diagnostics" / "engine.py", "a") as f:
        f.write("\n# a comment: no number changes\n")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, run.path],
        check=False,
        cwd=str(copy),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(copy)},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    where, key_and_valid = out.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(copy))  # the copy ran, not this checkout
    assert key_and_valid == f"{record.digest(record.key_inputs(run, 0))} True"


def record_folders(run):
    return sorted(os.listdir(os.path.join(run.cache_dir, "records")))


def test_a_version_bump_serves_the_old_record_marked_stale_until_its_replacement_is_committed(tmp_path, monkeypatch):
    run = golden_run(tmp_path)
    old = record.compute(run, 0)
    (old_folder,) = record_folders(run)
    monkeypatch.setattr(record, "ENGINE_VERSION", record.ENGINE_VERSION + 1)
    assert record.load(run, 0) is None  # pending for the worker
    shown = record.load(run, 0, stale=True)
    assert (
        shown.numbers == old.numbers
        and f"engine version {record.ENGINE_VERSION - 1} (now {record.ENGINE_VERSION})" in shown.stale
    )
    np.testing.assert_array_equal(shown.array("positive_cos"), old.array("positive_cos"))
    (row,), pending = ready_summaries(run)
    assert pending == [] and "engine version" in row["stale"] and row["uniformity"] == old.numbers["uniformity"]

    measure = engine.measure_snapshot

    def still_there(*args, **kwargs):  # while the worker recomputes, pages still read the old numbers
        assert record_folders(run) == [old_folder] and record.load(run, 0, stale=True).stale
        return measure(*args, **kwargs)

    monkeypatch.setattr(engine, "measure_snapshot", still_there)
    worker.watch(os.path.dirname(run.path), once=True, isolate=False)  # in-process: the patched version applies
    (new_folder,) = record_folders(run)
    fresh = record.load(run, 0)
    assert new_folder != old_folder and fresh is not None and fresh.stale is None
    assert record.load(run, 0, stale=True).stale is None and "stale" not in ready_summaries(run)[0][0]


def test_a_new_temperature_leaves_the_old_record_stale_with_the_reason(tmp_path):
    run = golden_run(tmp_path)
    record.compute(run, 0)
    with open(os.path.join(run.path, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": 0, "temperature": 0.5}) + "\n")
    run = open_run(run.path)
    assert record.load(run, 0) is None
    assert "temperature 0.2 (now 0.5)" in record.load(run, 0, stale=True).stale
    assert math.isclose(record.compute(run, 0).numbers["temperature"], 0.5)
    assert len(record_folders(run)) == 1


def test_removing_older_records_deletes_only_the_files_a_record_holds(tmp_path):
    run = golden_run(tmp_path)
    record.compute(run, 0)
    (old_folder,) = record_folders(run)
    keep = os.path.join(run.cache_dir, "records", old_folder, "my-notes.txt")
    with open(keep, "w") as f:
        f.write("not the project's")
    other = os.path.join(run.cache_dir, "records", "not-a-record")
    os.makedirs(other)
    with open(os.path.join(run.path, "metrics.jsonl"), "a") as f:  # a new τ: a new key, the old one replaced
        f.write(json.dumps({"step": 0, "temperature": 0.5}) + "\n")
    record.compute(open_run(run.path), 0)
    assert os.listdir(os.path.dirname(keep)) == ["my-notes.txt"] and os.path.isdir(other)


def test_the_collapse_card_shows_stale_numbers_marked(tmp_path, monkeypatch):
    """After a bump the page shows the older record's verdict, saying it is stale and why, while the worker
    (off here) has not recomputed it."""
    from streamlit.testing.v1 import AppTest

    from dashboard.text import md

    run = golden_run(tmp_path)
    record.compute(run, 0)
    monkeypatch.setattr(record, "ENGINE_VERSION", record.ENGINE_VERSION + 1)
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(tmp_path))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    at = AppTest.from_file(os.path.join(REPO, "app.py"), default_timeout=120)
    at.session_state["runs"] = ["golden"]
    at.switch_page("pages/collapse.py").run()
    assert not at.exception, [e.value for e in at.exception]
    cards = [e.value for e in (*at.success, *at.warning, *at.error, *at.info)]
    assert any(
        "golden, step 0" in c
        and "Stale numbers" in c
        and md(f"engine version {record.ENGINE_VERSION - 1} (now {record.ENGINE_VERSION})") in c
        for c in cards
    ), cards
