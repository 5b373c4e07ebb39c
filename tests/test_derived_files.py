"""Issue 24 items 1, 2, 4, 6 and 11 on derived files: a hostile .cache costs its own run and touches nothing
outside it; no snapshot stays memory-mapped; a record is committed last and a partial one is retried; a record
is trusted only under its seal. Inputs that once killed, hung or flooded a process run in a child (exit status,
peak RSS)."""

import errno
import hashlib
import json
import mmap
import os
import resource
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics import open_run
from diagnostics.store import cache, record
from runformat import layout, seal
from runformat.derived import DerivedFileError, DerivedFiles
from runformat.writer import RunWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, D = 48, 8


PEAK = (
    "import atexit, resource; atexit.register(lambda: print('PEAK_KB', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True))\n"
)


def child(code: str, *args: str, timeout: float = 120) -> tuple[int, str, float]:
    """Run `python -c code args` against this checkout: (exit code, stdout+stderr, peak RSS in MB of that
    child, 0 when it died before saying). A hang fails the test (TimeoutExpired), never the suite."""

    def limit():  # a regression must fail the test, not take the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    p = subprocess.run(
        [sys.executable, "-c", PEAK + code, *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
        preexec_fn=limit,
        timeout=timeout,
    )
    peak = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("PEAK_KB")]
    return p.returncode, p.stdout + p.stderr, int(peak[0]) / 1024 if peak else 0.0


def make_run(root, name="r", steps=(0,), n=N):
    rng = np.random.default_rng(0)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.1}}) as w:
        for step in steps:
            z = rng.standard_normal((n, D)).astype(np.float32)
            w.log_snapshot(step, embeddings=z, positives=z + 0.1, labels=np.arange(n) % 3)
    return open_run(os.path.join(str(root), name))


def tree(folder) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(folder)
        for f in files
    }


# -- item 1 and 6: a hostile cache costs its run, touches nothing outside it ----------------------------


@pytest.mark.parametrize("target", ["victim", "other-run-cache"])
def test_a_cache_linked_elsewhere_is_never_written_or_read_through(tmp_path, target):
    root = tmp_path / "runs"
    bad, good = make_run(root, "bad"), make_run(root, "good")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "settings.json").write_text("{}")
    if target == "other-run-cache":
        record.compute(good, 0)
        victim = root / "good" / ".cache"
    before = tree(victim)
    os.symlink(victim, os.path.join(bad.path, ".cache"))
    with pytest.warns(RuntimeWarning, match="not cached"):
        rec = record.compute(bad, 0)
    assert rec.numbers["n"] == N and not rec.committed and record.load(bad, 0) is None
    with pytest.warns(RuntimeWarning, match="not cached"):
        assert cache.cached_projection(bad, 0).shape == (N, 2)
    assert tree(victim) == before  # nothing written, nothing removed
    assert record.get_or_compute(good, 0).committed and record.load(good, 0) is not None  # the root goes on


def test_remove_deletes_only_the_projects_own_names(tmp_path):
    run = make_run(tmp_path)
    files = DerivedFiles.of_run(run)
    files.write("requests", "settings.json", data=b"{}")
    own = record.FOLDER
    with pytest.raises(DerivedFileError, match="not a file the project writes"):
        files.remove("requests", "settings.json", own=own)
    assert files.read("requests", "settings.json", limit=10, what="x") == b"{}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=4))
def test_no_name_escapes_the_cache_folder(names):
    files = DerivedFiles(layout.Storage("/tmp/root"), "/tmp/root/run/.cache")
    try:
        path = files.path(*names)
    except DerivedFileError:
        return
    assert os.path.normpath(path).startswith("/tmp/root/run/.cache/") and len(path.split(os.sep)) == 5 + len(names)


CHILD_LOAD = """
import sys, time
from diagnostics.store import cache, record; from diagnostics import open_run
run = open_run(sys.argv[1])
t = time.time()
rec = record.load(run, 0)
layout = cache.projection_if_ready(run, 0)
print("RESULT", rec is None, layout is None, round(time.time() - t, 2))
"""


@pytest.mark.parametrize("hostile", ["dev-zero", "fifo", "sparse-1tb"])
def test_a_record_or_layout_that_is_a_device_a_fifo_or_a_terabyte_is_refused_at_once(tmp_path, hostile):
    run = make_run(tmp_path)
    rec = record.compute(run, 0)
    cache.cached_projection(run, 0)
    target = os.path.join(rec.folder, record.COMMIT_FILE)
    layouts = os.path.join(run.cache_dir, "projections")
    (layout_file,) = [f for f in os.listdir(layouts) if f.endswith(".npy")]
    for path in (target, os.path.join(layouts, layout_file)):
        os.unlink(path)
        if hostile == "dev-zero":
            os.symlink("/dev/zero", path)
        elif hostile == "fifo":
            os.mkfifo(path)
        else:
            with open(path, "wb") as f:
                f.truncate(1 << 40)
    code, out, rss = child(CHILD_LOAD, run.path, timeout=120)
    assert code == 0 and "RESULT True True" in out, out
    assert rss < 1024, f"peak RSS {rss:.0f} MB"  # the interpreter with torch is ~400 MB; a read of 1 TB is not


# -- item 2: no mmap that outlives its file ----------------------------------------------------------------

TRUNCATE = """
import sys, numpy as np
from diagnostics import RunFormatError, open_run
run = open_run(sys.argv[1])
path = run.file("snapshots", "0000000000", "embeddings.npy")
z = np.load(path, mmap_mode="r") if sys.argv[2] == "mmap" else run.snapshot(0).embeddings
with open(path, "r+b") as f:  # as `cp` over it or `rsync --inplace` does
    f.truncate(200)
print("SUM", float(np.asarray(z, np.float64).sum()), flush=True)
try:
    run.snapshot(0)
except RunFormatError as e:
    print("ERROR", e)
"""


def test_a_snapshot_truncated_in_place_is_an_error_not_a_sigbus(tmp_path):
    run = make_run(tmp_path, "a", n=4096)  # 128 KB: pages past the cut are gone, as in a real snapshot
    code, out, _ = child(TRUNCATE, run.path, "reader")
    assert code == 0 and "SUM" in out and "ERROR" in out and "embeddings.npy" in out, out
    control = make_run(tmp_path, "b", n=4096)  # the same with the mapping the reader used to keep: the process dies
    code, out, _ = child(TRUNCATE, control.path, "mmap")
    assert code == -signal.SIGBUS and "SUM" not in out


def test_snapshot_arrays_are_read_only_copies_in_memory(tmp_path):
    z = make_run(tmp_path).snapshot(0).embeddings
    bases = [z]
    while getattr(bases[-1], "base", None) is not None:
        bases.append(bases[-1].base)
    assert not z.flags.writeable and not any(isinstance(b, (np.memmap, mmap.mmap)) for b in bases)


# -- item 4: numbers, arrays, then record.json; a partial record is retried --------------------------------


@pytest.mark.parametrize("fails", [record.NUMBERS_FILE, "positive_cos.npy", record.COMMIT_FILE])
def test_a_full_disk_leaves_no_commit_and_the_record_is_retried(tmp_path, monkeypatch, fails):
    run = make_run(tmp_path)
    write = DerivedFiles.write

    def full(self, *parts, data):
        if parts[-1] == fails:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, *parts, data=data)

    monkeypatch.setattr(DerivedFiles, "write", full)
    with pytest.warns(RuntimeWarning, match="No space left"):
        assert not record.compute(run, 0).committed
    folders = os.path.join(run.cache_dir, "records")
    for folder in os.listdir(folders) if os.path.isdir(folders) else []:  # what was written before the failure
        assert record.COMMIT_FILE not in os.listdir(os.path.join(folders, folder))
    assert record.load(run, 0) is None and record.load(run, 0, stale=True) is None  # never a TypeError
    monkeypatch.setattr(DerivedFiles, "write", write)  # space returns
    assert record.get_or_compute(run, 0).committed and record.load(open_run(run.path), 0) is not None


def test_order_of_writes_is_numbers_arrays_groups_then_the_commit(tmp_path, monkeypatch):
    run, names = make_run(tmp_path), []
    write = DerivedFiles.write
    monkeypatch.setattr(
        DerivedFiles, "write", lambda self, *parts, data: (names.append(parts[-1]), write(self, *parts, data=data))
    )
    record.compute(run, 0)
    assert names[0] == record.NUMBERS_FILE and names[-1] == record.COMMIT_FILE
    assert names[-2] == record.GROUPS_FILE and all(n.endswith(".npy") for n in names[1:-2])


# -- item 11: sealed under a key outside the served tree ---------------------------------------------------


def test_a_rewritten_array_is_refused_and_the_record_withdrawn(tmp_path):
    run = make_run(tmp_path)
    rec = record.compute(run, 0)
    path = os.path.join(rec.folder, "positive_cos.npy")
    forged = np.ones(N, np.float32)
    np.save(path, forged)
    loaded = record.load(open_run(run.path), 0)
    with pytest.raises(Exception, match="positive_cos.npy.*sealed"):
        loaded.array("positive_cos")
    assert record.load(open_run(run.path), 0) is None  # withdrawn: the worker recomputes it


def test_numbers_rewritten_with_their_hash_and_the_manifest_are_refused(tmp_path):
    """An editor who recomputes every sha256 (the old defence) still cannot make the seal."""
    run = make_run(tmp_path)
    rec = record.compute(run, 0)
    numbers = dict(rec.numbers, std_ratio=1.0, rank_fraction=0.9)
    text = json.dumps(numbers, sort_keys=True).encode()
    with open(os.path.join(rec.folder, record.NUMBERS_FILE), "wb") as f:
        f.write(text)
    meta_path = os.path.join(rec.folder, record.COMMIT_FILE)
    with open(meta_path) as f:
        meta = json.load(f)
    meta["numbers_sha256"] = hashlib.sha256(text).hexdigest()
    meta["seal"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    assert record.load(open_run(run.path), 0) is None


def test_a_record_copied_from_another_root_is_not_trusted(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")  # the same snapshot bytes in two roots
    rec = record.compute(a, 0)
    dest = os.path.join(b.cache_dir, "records")
    os.makedirs(dest)
    os.rename(rec.folder, os.path.join(dest, os.path.basename(rec.folder)))
    assert record.load(b, 0) is None


def test_the_key_is_private_made_once_and_never_inside_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv(seal.STATE_ENV, str(tmp_path / "state"))
    root = tmp_path / "runs"
    root.mkdir()
    tag = seal.seal(str(root), b"data")
    (key,) = os.listdir(seal.key_dir())
    mode = os.stat(os.path.join(seal.key_dir(), key)).st_mode
    assert mode & 0o777 == 0o600 and os.stat(seal.key_dir()).st_mode & 0o077 == 0
    assert seal.verify(str(root), b"data", tag) and not seal.verify(str(root), b"datA", tag)
    assert not seal.verify(str(root), b"data", None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            ("import sys; from runformat import seal; print(seal.seal(sys.argv[1], b'data'))"),
            str(root),
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
        timeout=120,
    )
    assert out.stdout.strip() == tag  # another process (the worker, the dashboard) reads the same key
    assert seal.seal(str(tmp_path / "other"), b"data") != tag
    monkeypatch.setenv(seal.STATE_ENV, str(root / ".state"))
    with pytest.raises(seal.SealError, match="inside the runs root"):
        seal.seal(str(root), b"data")


def test_a_key_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(seal.STATE_ENV, str(tmp_path / "state"))
    seal.seal(str(tmp_path / "runs"), b"x")
    (key,) = os.listdir(seal.key_dir())
    os.chmod(os.path.join(seal.key_dir(), key), 0o644)
    seal._key.cache_clear()
    with pytest.raises(seal.SealError, match="readable only by them"):
        seal.seal(str(tmp_path / "runs"), b"x")
    seal._key.cache_clear()


@pytest.mark.parametrize("linked", ["requests", ".cache"])
def test_a_linked_requests_folder_or_root_cache_loses_nothing_and_gets_no_worker_state(tmp_path, linked):
    """Issue 24 item 1: a symlinked .cache/requests made the worker delete the victim folder's *.json, and a
    symlinked .cache had worker.json written outside the root."""
    from diagnostics.work import worker

    root = tmp_path / "runs"
    make_run(root, "a")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "settings.json").write_text('{"keep": true}')
    (victim / "package.json").write_text("[" * 100)
    (victim / f"{'c' * 24}.json").write_text("not json")  # even one named like a request
    before = tree(victim)
    if linked == "requests":
        (root / ".cache").mkdir()
        os.symlink(victim, root / ".cache" / "requests")
    else:
        os.symlink(victim, root / ".cache")
    worker.watch(str(root), once=True)
    assert tree(victim) == before
    assert record.load(open_run(str(root / "a")), 0) is not None  # the run was measured all the same
    if linked == ".cache":
        assert worker.status(str(root)) is None  # not written through the link, not read through it


def test_an_edited_run_state_verdict_is_not_shown(tmp_path):
    """Issue 24 item 11: editing run_state.json's verdict listed a collapsed run as healthy on Home."""
    from diagnostics.judge import run_state

    run = make_run(tmp_path)
    record.compute(run, 0)
    state = run_state.write(run)
    assert run_state.load(run, *run_state.listing(run)) == (True, state)
    path = os.path.join(run.cache_dir, layout.RUN_STATE_FILE)
    with open(path) as f:
        body = json.load(f)
    body["state"]["verdict"] = "complete_collapse" if state["verdict"] != "complete_collapse" else "healthy"
    with open(path, "w") as f:
        json.dump(body, f)
    assert run_state.load(run, *run_state.listing(run)) == (False, None)  # the caller computes from records


def test_a_layout_rewritten_without_the_key_is_recomputed(tmp_path):
    run = make_run(tmp_path)
    first = cache.cached_projection(run, 0)
    layouts = os.path.join(run.cache_dir, "projections")
    (name,) = [f for f in os.listdir(layouts) if f.endswith(".npy")]
    np.save(os.path.join(layouts, name), np.zeros((N, 2), np.float32))  # right shape, not sealed
    assert cache.projection_if_ready(run, 0) is None
    np.testing.assert_array_equal(cache.cached_projection(run, 0), first)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), st.integers(), st.none()))
def test_verify_is_false_for_any_forged_tag_never_an_exception(tag):
    assert seal.verify("/tmp/contrastscope-seal-fuzz-root", b"data", tag) is False


def test_a_read_only_state_folder_falls_back_to_the_users_temp_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(seal.STATE_ENV, "/proc/contrastscope-cannot-write-here")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    tag = seal.seal(str(tmp_path / "runs"), b"x")
    assert len(os.listdir(seal.fallback_dir())) == 1 and seal.verify(str(tmp_path / "runs"), b"x", tag)
