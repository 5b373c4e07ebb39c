"""Issue 12's probes, each a test: nothing on disk or in a name takes the reader down, and the writer owns its run
and stores what it is given faithfully. Inputs that once killed the process run in a child."""

import errno
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np
import pytest

from diagnostics import RunFormatError, list_runs, open_run
from runformat import layout
from runformat.bounds import ReadLimits, RunFormatWarning
from runformat.fields import STORAGE_FLOATS
from runformat.lock import RunOwnedError
from runformat.reader import unreadable_runs
from runformat.writer import RunWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDECAR0 = f"{layout.SNAPSHOT_DIR}/{layout.snapshot_dirname(0)}.json"
EMB0 = f"{layout.SNAPSHOT_DIR}/{layout.snapshot_dirname(0)}/embeddings.npy"
READ_ALL = (
    "import sys; from diagnostics import open_run; r = open_run(sys.argv[1]); r.info; r.config; r.status; "
    "print(len(r.metrics())); [r.snapshot(s) for s in r.snapshot_steps()]"
)


def child(args: list[str], cap_gb: int = 6) -> tuple[int, str, float]:
    """Run `python args` against this checkout: (exit code, stderr, peak RSS in MB of that child alone)."""

    def limit():  # a regression must fail the test, not take the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (cap_gb << 30, cap_gb << 30))

    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=REPO),
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=limit,
        )
        _, status, usage = os.wait4(p.pid, 0)
        err.seek(0)
        return os.waitstatus_to_exitcode(status), err.read().decode("utf-8", "replace"), usage.ru_maxrss / 1024


def make_run(root, name="r", n=64, d=8):
    rng = np.random.default_rng(0)
    with RunWriter(root, name, config={"a": 1}) as run:
        run.log_metrics(0, {"loss": 1.0, "temperature": 0.1})
        run.log_snapshot(0, embeddings=rng.standard_normal((n, d)).astype(np.float32), labels=np.arange(n) % 4)
    return os.path.join(root, name)


# -- the reader bounds what it parses ------------------------------------------------------------------


def test_deeply_nested_metrics_line_is_skipped_not_a_segfault(tmp_path):
    run = make_run(tmp_path)
    with open(os.path.join(run, layout.METRICS_FILE), "ab") as f:  # segfaulted pyarrow (exit 139)
        f.write(b'{"step": 1, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n")
        f.write(b'{"step": 2, "wall_time": 1.0, "loss": 0.5}\n')
    rc, err, _ = child(["-c", READ_ALL, run])
    assert rc == 0 and "nested deeper than 64" in err and "Traceback" not in err
    with pytest.warns(RunFormatWarning, match=layout.METRICS_FILE):
        r = open_run(run)
        df = r.metrics()
    assert list(df["step"]) == [0, 2] and list(df["loss"]) == [1.0, 0.5]
    assert len(r.skipped_metric_lines) == 1 and "nested" in r.skipped_metric_lines[0][1]
    rc, err, _ = child(["-m", "diagnostics", "summarize", run])
    assert rc == 0 and "Traceback" not in err


@pytest.mark.parametrize("target", [layout.RUN_FILE, layout.CONFIG_FILE, SIDECAR0])
def test_unbalanced_brackets_are_a_run_format_error(tmp_path, target):
    run = make_run(tmp_path)
    with open(os.path.join(run, target), "wb") as f:  # json raised a bare RecursionError
        f.write(b"[" * 100_000)
    r = open_run(run)
    with pytest.raises(RunFormatError, match=f"{os.path.basename(target)}: JSON nested deeper than 64"):
        {layout.RUN_FILE: lambda: r.info, layout.CONFIG_FILE: lambda: r.config}.get(target, lambda: r.snapshot(0))()


def test_unbalanced_brackets_in_metrics_skip_the_line(tmp_path):
    run = make_run(tmp_path)
    with open(os.path.join(run, layout.METRICS_FILE), "ab") as f:
        f.write(b"[" * 100_000 + b"\n")
    with pytest.warns(RunFormatWarning, match="nested deeper"):
        assert list(open_run(run).metrics()["step"]) == [0]


def test_brackets_inside_strings_do_not_count(tmp_path):
    run = make_run(tmp_path)
    config = {"note": "[" * 5000, "nested": [[[["ok"]]]]}
    with open(os.path.join(run, layout.CONFIG_FILE), "w") as f:
        json.dump(config, f)
    assert open_run(run).config == config


def test_sparse_npy_claiming_10e8_rows_is_refused_before_it_is_read(tmp_path):
    run = make_run(tmp_path)
    path = os.path.join(run, EMB0)
    shape = (10**8, 8)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f2", "fortran_order": False, "shape": shape})
        header = f.tell()
    os.truncate(path, header + math.prod(shape) * 2)  # 1.6 GB apparent, 4 KB on disk
    os.remove(os.path.join(os.path.dirname(path), "labels.npy"))
    sidecar = os.path.join(run, SIDECAR0)
    info = json.load(open(sidecar))
    info.update(n=shape[0], fields={"embeddings": dict(info["fields"]["embeddings"], shape=list(shape))})
    json.dump(info, open(sidecar, "w"))
    rc, err, peak_mb = child(["-m", "diagnostics", "summarize", run])  # was 4.9 GB, then a torch error
    assert rc == 2 and "embeddings.npy" in err and "memory budget" in err and "Traceback" not in err
    assert peak_mb < 1000, peak_mb
    with pytest.raises(RunFormatError, match="memory budget"):
        open_run(run).snapshot(0)


def test_memory_budget_is_configurable(tmp_path):
    run = make_run(tmp_path, n=1000, d=16)  # float16: 1000 x 16 counts as 64,000 bytes of float32
    r = open_run(run, limits=ReadLimits(snapshot_bytes=64_000 + 8 * 1000))
    assert r.snapshot(0).n == 1000
    with pytest.raises(RunFormatError, match="memory budget"):
        open_run(run, limits=ReadLimits(snapshot_bytes=64_000 + 8 * 1000 - 1)).snapshot(0)
    assert open_run(run, limits=ReadLimits(snapshot_bytes=64_000)).snapshot(0, fields=()).n == 1000


def test_npy_header_claiming_more_than_the_file_holds(tmp_path):
    run = make_run(tmp_path)
    with open(os.path.join(run, EMB0), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(run, EMB0)) - 1)
    with pytest.raises(RunFormatError, match="embeddings.npy: header declares 64x8 float16"):
        open_run(run).snapshot(0)


@pytest.mark.parametrize(
    "target, limit_name", [(layout.RUN_FILE, "run_json_bytes"), (layout.NOTES_FILE, "notes_bytes")]
)
def test_oversized_files_are_refused_by_size(tmp_path, target, limit_name):
    run = make_run(tmp_path)
    with open(os.path.join(run, target), "wb") as f:
        f.truncate(getattr(ReadLimits(), limit_name) + 1)
    with pytest.raises(RunFormatError, match=f"{target}: .* may have at most"):
        r = open_run(run)
        r.info, r.notes


def test_fifo_is_refused_not_waited_on(tmp_path):
    run = make_run(tmp_path)
    os.remove(os.path.join(run, layout.CONFIG_FILE))
    os.mkfifo(os.path.join(run, layout.CONFIG_FILE))
    with pytest.raises(RunFormatError, match="config.json: not a regular file"):
        open_run(run).config


@pytest.mark.parametrize(
    "edit, match",
    [
        ({"stall_after_s": "x"}, "'stall_after_s' must be a finite positive number"),
        ({"stall_after_s": 0}, "'stall_after_s' must be a finite positive number"),
        ({"heartbeat": "soon"}, "'heartbeat' must be a finite number"),
        ({"status": "banana"}, "'status' must be one of"),
        ({"format_version": True}, r"not a run.json \(no integer format_version\)"),
        ({"dropped_snapshots": "x"}, "'dropped_snapshots' has the wrong type"),
    ],
)
def test_bad_typed_run_json_values_name_the_file_and_key(tmp_path, edit, match):
    run = make_run(tmp_path)
    info = json.load(open(os.path.join(run, layout.RUN_FILE)))
    info.update(edit)
    json.dump(info, open(os.path.join(run, layout.RUN_FILE), "w"))
    with pytest.raises(RunFormatError, match=f"run.json: {match}"):
        open_run(run).status


def test_nan_literal_heartbeat_is_refused_and_a_future_one_is_stalled(tmp_path):
    run = make_run(tmp_path)
    path = os.path.join(run, layout.RUN_FILE)
    info = json.load(open(path))
    info["status"] = "running"
    with open(path, "w") as f:  # json.dump writes the NaN literal json.loads would accept
        json.dump(dict(info, heartbeat=math.nan), f)
    with pytest.raises(RunFormatError, match="run.json: not valid JSON .*NaN"):
        open_run(run).status
    json.dump(dict(info, heartbeat=1e300), open(path, "w"))  # "running" for ever before
    assert open_run(run).status == "stalled"
    json.dump(dict(info, heartbeat=time.time() + 60), open(path, "w"))  # clock skew: still running
    assert open_run(run).status == "running"


@pytest.mark.parametrize(
    "edit",
    [
        {"fields": ["embeddings"]},
        {"n": "64"},
        {"n": True},
        {"wall_time": "x"},
        {"fields": {"embeddings": {"file": "embeddings.npy", "nonfinite_rows": "3"}}},
        {"fields": {"embeddings": {"file": "embeddings.npy", "shape": "64x8"}}},
    ],
)
def test_bad_sidecar_values_are_a_run_format_error(tmp_path, edit):
    run = make_run(tmp_path)
    sidecar = json.load(open(os.path.join(run, SIDECAR0)))
    sidecar.update(edit)
    json.dump(sidecar, open(os.path.join(run, SIDECAR0), "w"))
    with pytest.raises(RunFormatError, match=os.path.basename(SIDECAR0)):
        open_run(run).snapshot(0)


@pytest.mark.parametrize("shape", [(64, 0), (0, 8), (64,), (64, 2, 4)])
def test_embeddings_of_impossible_shape_are_refused(tmp_path, shape):
    run = make_run(tmp_path)
    np.save(os.path.join(run, EMB0), np.zeros(shape, np.float16))
    sidecar = json.load(open(os.path.join(run, SIDECAR0)))
    sidecar["fields"]["embeddings"]["shape"] = list(shape)
    json.dump(sidecar, open(os.path.join(run, SIDECAR0), "w"))
    with pytest.raises(RunFormatError, match="embeddings.npy"):
        open_run(run).snapshot(0)


def test_folders_with_unreadable_names_are_listed_apart(tmp_path):
    good = make_run(tmp_path, "good")
    run_json = open(os.path.join(good, layout.RUN_FILE), "rb").read()
    for raw in (b"bad\xff\xfe", b"line\nbreak", b"   "):
        folder = os.path.join(os.fsencode(tmp_path), raw)
        os.mkdir(folder)
        with open(os.path.join(folder, b"run.json"), "wb") as f:
            f.write(run_json)
    assert [r.name for r in list_runs(tmp_path)] == ["good"]
    notes = unreadable_runs(tmp_path)
    assert len(notes) == 3
    assert any("bad\\xff\\xfe" in n and "non-UTF-8" in n for n in notes)
    assert any("line\\nbreak" in n for n in notes) and any("white space" in n for n in notes)
    assert all(n.isprintable() for n in notes)
    assert list_runs(tmp_path)[0].status == "finished"


# -- metrics: torn lines --------------------------------------------------------------------------------


def test_torn_line_mid_file_is_skipped_with_a_warning(tmp_path):
    run = make_run(tmp_path)
    path = os.path.join(run, layout.METRICS_FILE)
    torn_at = os.path.getsize(path)
    with open(path, "ab") as f:  # a crash mid-append, then a later writer appending after it
        f.write(b'{"step": 1, "wall_time": 1.0, "lo')
        f.write(b'{"step": 2, "wall_time": 2.0, "loss": 0.25}\n{"step": 3, "wall_time": 3.0, "loss": 0.125}\n')
    with pytest.warns(RunFormatWarning, match=f"metrics.jsonl: line at byte {torn_at} skipped: not JSON"):
        df = open_run(run).metrics()
    assert list(df["step"]) == [0, 3] and list(df["loss"]) == [1.0, 0.125]


def _failing_writes(monkeypatch, fail_at: set, ftruncate_fails=False):
    """os.write that writes half its bytes and then fails with ENOSPC on the listed calls (1-based)."""
    real_write, calls = os.write, {"n": 0}

    def write(fd, data):
        calls["n"] += 1
        if calls["n"] in fail_at:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    if ftruncate_fails:

        def ftruncate(fd, size):
            raise OSError(errno.EIO, "I/O error")

        monkeypatch.setattr(os, "ftruncate", ftruncate)


@pytest.mark.parametrize("ftruncate_fails", [False, True])
def test_failed_append_leaves_no_fragment_mid_file(tmp_path, monkeypatch, ftruncate_fails):
    run = RunWriter(tmp_path, "full")
    run.log_metrics(0, {"loss": 1.0})
    run.flush()
    _failing_writes(monkeypatch, {1}, ftruncate_fails)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log_metrics(1, {"loss": 0.5})
        run.flush()  # this append fails half-way
        monkeypatch.undo()
        run.log_metrics(2, {"loss": 0.25})
        run.close()
    assert any("No space left" in str(w.message) for w in caught)
    data = open(tmp_path / "full" / layout.METRICS_FILE, "rb").read()
    r = open_run(tmp_path / "full")
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        assert list(r.metrics()["step"]) == [0, 2]
    assert r.info["dropped_metric_lines"] == 1
    if ftruncate_fails:  # the fragment could not be cut: it was ended with a newline and is skipped
        assert len(r.skipped_metric_lines) == 1 and len(skipped) == 1
    else:
        assert data.count(b"\n") == 2 and r.skipped_metric_lines == []


# -- the writer owns its run ----------------------------------------------------------------------------

RACER = """
import sys, time
from runformat.writer import RunWriter
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    with RunWriter(sys.argv[1], "race") as run:
        for step in range(300):
            run.log_metrics(step, {"who": float(sys.argv[3])})
    print("wrote")
except ValueError as e:
    print("refused:", e)
"""


def test_two_writers_started_together_one_is_refused(tmp_path):
    start = time.time() + 2.0  # both past their imports, then released at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(start), str(i)],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=REPO),
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs[1] == "wrote", outs
    assert outs[0].startswith("refused:") and ("being written by pid" in outs[0] or "already exists" in outs[0])
    df = open_run(tmp_path / "race").metrics()
    assert list(df["step"]) == list(range(300)) and df["who"].nunique() == 1


def test_second_writer_in_the_same_process_is_refused_naming_the_owner(tmp_path):
    with RunWriter(tmp_path, "mine") as run:
        with pytest.raises(RunOwnedError, match=f"being written by pid {os.getpid()} on host"):
            RunWriter(tmp_path, "mine", resume=True)
        run.log_metrics(0, {"loss": 1.0})
    with RunWriter(tmp_path, "mine", resume=True) as run:  # released at close
        run.log_metrics(1, {"loss": 0.5})
    assert list(open_run(tmp_path / "mine").metrics()["step"]) == [0, 1]


def test_lock_of_a_live_writer_in_another_process_is_honoured(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from runformat.writer import RunWriter
        run = RunWriter({str(tmp_path)!r}, "held")
        print("ready", flush=True)
        sys.stdin.readline()
        run.close()
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(RunOwnedError, match=f"pid {proc.pid} on host"):
            RunWriter(tmp_path, "held", resume=True)
    finally:
        proc.communicate("\n", timeout=30)
    RunWriter(tmp_path, "held", resume=True).close()


def test_stale_lock_of_a_dead_writer_is_taken_over(tmp_path):
    with RunWriter(tmp_path, "stale") as run:
        run.log_metrics(0, {"loss": 1.0})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    lock_path = tmp_path / "stale" / layout.LOCK_FILE
    lock_path.write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "acquired": 1.0}))
    run = RunWriter(tmp_path, "stale", resume=True)
    assert run._lock.previous["pid"] == dead.pid
    assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    run.close()


def test_lock_naming_another_host_with_a_fresh_heartbeat_is_honoured(tmp_path):
    with RunWriter(tmp_path, "nfs") as run:
        run.log_metrics(0, {"loss": 1.0})
    info_path = tmp_path / "nfs" / layout.RUN_FILE
    info = json.loads(info_path.read_text())
    (tmp_path / "nfs" / layout.LOCK_FILE).write_text(json.dumps({"host": "node-7", "pid": 1, "acquired": 1.0}))
    info_path.write_text(json.dumps(dict(info, status="running", heartbeat=time.time())))
    with pytest.raises(RunOwnedError, match="pid 1 on host node-7 .*another host"):
        RunWriter(tmp_path, "nfs", resume=True)
    info_path.write_text(json.dumps(dict(info, status="running", heartbeat=time.time() - 3600)))
    RunWriter(tmp_path, "nfs", resume=True).close()  # node-7 died an hour ago


# -- the writer refuses what it cannot store faithfully -------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a\nb", "tab\there", "del\x7f", "rtl\u202eevil", "   ", "\u2028", "é" * 128, "bad\udcff"]
)
def test_writer_refuses_names_that_do_not_read_back(tmp_path, name):
    with pytest.raises(ValueError, match="name"):
        RunWriter(tmp_path, name)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("step", [2**63, 10**30, -1])
def test_writer_refuses_steps_outside_int64(tmp_path, step):
    with RunWriter(tmp_path, "s") as run:
        with pytest.raises(ValueError, match=r"step: must be an int in \[0, 2\^63\)"):
            run.log_metrics(step, {"loss": 1.0})
        with pytest.raises(ValueError, match="step"):
            run.log_snapshot(step, embeddings=np.ones((3, 2)))
        run.log_snapshot(2**63 - 1, embeddings=np.ones((3, 2)))
    assert open_run(tmp_path / "s").snapshot_steps() == [2**63 - 1]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(embeddings=np.zeros((5, 0))), "embeddings"),
        (dict(embeddings=np.zeros((5, 3)), positives=np.zeros((5, 0))), "positives"),
        (dict(embeddings=np.zeros((5, 3)), features=np.zeros((5, 0))), "features"),
        (dict(embeddings=np.zeros((5, 3)), labels=np.full(5, 2**63, np.uint64)), "labels"),
        (dict(embeddings=np.zeros((5, 3)), images=np.zeros((5, 0, 4), np.uint8)), "images"),
    ],
)
def test_writer_refuses_empty_dimensions_and_wrapping_ints(tmp_path, kwargs, argument):
    with RunWriter(tmp_path, "d0") as run:
        with pytest.raises(ValueError, match=argument):
            run.log_snapshot(0, **kwargs)


def _stored(tmp_path, **fields):
    with RunWriter(tmp_path, "dt") as run:
        run.log_snapshot(0, **fields)
    return open_run(tmp_path / "dt").snapshot(0)


def _worst_relative_error(stored, x):
    """max over rows of (largest error in the row / largest magnitude in the row): the storage rule's measure."""
    err = np.abs(np.asarray(stored, np.float64) - x).max(axis=1)
    return float((err / np.abs(x).max(axis=1)).max())


def test_unit_scale_embeddings_are_float16_within_the_stated_error(tmp_path):
    x = np.random.default_rng(0).standard_normal((2000, 32)) / math.sqrt(32)
    s = _stored(tmp_path, embeddings=x)
    assert s.embeddings.dtype == np.float16
    # round to nearest: a normal float16 is within 2^-11 of the value; the rule allows 2^-10
    assert _worst_relative_error(s.embeddings, x) <= 2.0**-11 * (1 + 1e-12)
    assert STORAGE_FLOATS[0] == (np.float16, 2.0**-10)


def test_tiny_embeddings_do_not_flush_in_float16(tmp_path):
    from diagnostics.reference.reference_collapse import effective_rank

    x = np.random.default_rng(0).standard_normal((2000, 16)) * 1e-8  # float16 flushed 99.7% of these to 0
    s = _stored(tmp_path, embeddings=x)
    assert s.embeddings.dtype == np.float32
    np.testing.assert_array_equal(s.embeddings, x.astype(np.float32))
    assert _worst_relative_error(s.embeddings, x) <= 2.0**-24 * (1 + 1e-12)
    assert abs(effective_rank(np.asarray(s.embeddings, np.float64)) - effective_rank(x)) < 1e-4


def test_one_tiny_column_keeps_float32(tmp_path):
    x = np.random.default_rng(1).standard_normal((500, 8))
    x[:, 3] *= 1e-7  # a nearly dead dimension: float16 would quantise it to a few subnormal steps
    assert _stored(tmp_path, embeddings=x).embeddings.dtype == np.float32


def test_values_beyond_float32_stay_float64_and_count_as_finite(tmp_path):
    x = np.ones((4, 3))
    x[1, 1] = 1e39  # stored as inf with nonfinite_rows = 0 before
    x[2, 0] = np.nan
    s = _stored(tmp_path, embeddings=x)
    assert s.embeddings.dtype == np.float64 and s.embeddings[1, 1] == 1e39
    assert s.nonfinite_rows == 1 and s.info["fields"]["embeddings"]["nonfinite_rows"] == 1


def test_large_but_float32_values_and_nonfinite_counts(tmp_path):
    x = np.full((6, 2), 1e5, np.float32)  # over float16's 65504
    x[0, 0], x[3, 1] = np.inf, -np.inf
    s = _stored(tmp_path, embeddings=x, metadata={"tiny": np.full(6, 1e-9), "plain": np.arange(6) / 8})
    assert s.embeddings.dtype == np.float32 and s.nonfinite_rows == 2
    fields = s.info["fields"]
    assert fields["meta.tiny"]["dtype"] == "float32" and fields["meta.plain"]["dtype"] == "float16"
    np.testing.assert_array_equal(s.metadata["plain"], np.arange(6) / 8)
