"""Fuzz every file of a real run (run.json, config.json, metrics.jsonl, sidecars, .npy headers and bodies, notes,
cache records) and read the result with the reader and the CLI. The reader may raise RunFormatError (naming a
file of the run) and warn RunFormatWarning, nothing else; `summarize` and `report` exit with a clean message,
never a signal or a traceback, within a memory budget. Derandomized with a fixed number of examples, so CI
runs the same cases every time (about 50 s of CPU in all, most of it two children importing torch)."""

import json
import os
import shutil
import tempfile
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_hostile import child

from diagnostics import RunFormatError, list_runs, open_run
from runformat import layout
from runformat.bounds import RunFormatWarning
from runformat.writer import RunWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_RSS_MB = 1500  # summarize + report of every mutated run in one child: ~450 MB when nothing is wrong

HOSTILE_BYTES = [
    b"[" * 100_000,
    b"{" * 30_000,
    b'{"a":' * 20_000,
    b"[" * 20_000 + b"]" * 20_000,
    b"\xff\xfe\x00",
    b"",
    b"null",
    b"[]",
    b"{}",
    b'{"format_version": 99}',
    b'{"step": 1e400, "x": 1}\n',
    b"1" * 5000,
    b'{"step": -5, "x": 1}\n',
    b'{"step": 18446744073709551616}\n',
    b'{"step": 3, "x": NaN, "y": [1, {"z": 2}]}\n',
    b'{"step": 3, "x": true, "y": "Infinity"}\n',
    b'{"n": 64, "fields": {"embeddings": {"file": "../../run.json"}}}',
    b'{"format_version": 1, "heartbeat": NaN, "status": "running"}',
    b"\x93NUMPY\x01\x00\xff\xff" + b" " * 64,
]
HOSTILE_VALUES = [
    None,
    True,
    "x",
    -1,
    0,
    2**64,
    1e308,
    float("nan"),
    [],
    {},
    [[[["deep"]]]],
    "NaN",
    "../../run.json",
    "embeddings.npy",
    "meta-000.npy",
    [10**8, 8],
    [64, 0],
    [64],
    "float64",
    "complete_collapse",
    "![x](https://evil.example)",
]
KEY_PATHS = [
    ("format_version",),
    ("status",),
    ("heartbeat",),
    ("stall_after_s",),
    ("name",),
    ("error",),
    ("dropped_snapshots",),
    ("description",),
    ("n",),
    ("fields",),
    ("wall_time",),
    ("step",),
    ("fields", "embeddings"),
    ("fields", "embeddings", "shape"),
    ("fields", "embeddings", "file"),
    ("fields", "embeddings", "dtype"),
    ("fields", "embeddings", "nonfinite_rows"),
    ("fields", "labels", "shape"),
    ("fields", "meta.domain", "file"),
    ("lr",),
    ("contrastive",),
    ("verdict",),
    ("effective_rank",),
    ("temperature",),
]
NPY_DESCR = ["<f2", "<f4", "<f8", "|O", "<i8", "|u1", "|b1", ">f4", "<U3", "|V8", "<c8", "<M8[s]", "(2,)<f4"]

mutation = st.one_of(
    st.tuples(st.just("replace"), st.one_of(st.binary(max_size=300), st.sampled_from(HOSTILE_BYTES))),
    st.tuples(st.just("overwrite"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.sampled_from(HOSTILE_BYTES + [b"\n", b"{", b'"'])),
    st.tuples(st.just("json_set"), st.sampled_from(KEY_PATHS), st.sampled_from(HOSTILE_VALUES)),
    st.tuples(
        st.just("npy_header"),
        st.sampled_from(NPY_DESCR),
        st.lists(st.sampled_from([-1, 0, 1, 3, 8, 64, 65, 10**8, 2**40]), max_size=3),
        st.booleans(),
    ),
)


def _files(run_dir: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), run_dir) for d, _, fs in os.walk(run_dir) for f in fs)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A real run: two snapshots of every field kind, notes, and the summary cache the CLI fills."""
    from diagnostics.store import cache

    root = tmp_path_factory.mktemp("base")
    rng = np.random.default_rng(0)
    with RunWriter(root, "r", config={"lr": 1e-3, "contrastive": {"temperature": 0.1}}) as run:
        for step in (0, 10):
            run.log_metrics(step, {"loss/total": 1.0 / (step + 1), "temperature": 0.1})
            z = rng.standard_normal((64, 8)).astype(np.float32)
            run.log_snapshot(
                step,
                embeddings=z,
                positives=z + 0.1,
                features=rng.standard_normal((64, 16)),
                labels=np.arange(64) % 4,
                images=np.zeros((64, 4, 4), np.uint8),
                metadata={"domain": [f"d{i % 3}" for i in range(64)], "w": np.linspace(0, 1, 64)},
            )
    r = open_run(root / "r")
    r.save_notes("looks healthy")
    for step in r.snapshot_steps():
        cache.cached_summary(r, step)
    files = _files(str(root / "r"))
    assert any(f.startswith(os.path.join(layout.CACHE_DIR, "records")) for f in files), files
    return str(root / "r"), files


def _mutate(path: str, m: tuple) -> None:
    data = open(path, "rb").read()
    kind = m[0]
    if kind == "json_set":
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            node = obj
            for key in m[1][:-1]:
                node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else node
            node[m[1][-1]] = m[2]
            data = json.dumps(obj).encode()
        else:
            kind, m = "replace", ("replace", json.dumps(m[2]).encode())
    if kind == "npy_header":
        _, descr, shape, fortran = m
        body = data[data.find(b"\n", 8) + 1 :] if data.startswith(b"\x93NUMPY") else data
        header = repr(
            {
                "descr": descr if not descr.startswith("(") else [("a", descr[4:], (2,))],
                "fortran_order": fortran,
                "shape": tuple(shape),
            }
        ).encode()
        header += b" " * (-(len(header) + 11) % 64) + b"\n"
        data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body
        with open(path, "wb") as f:
            f.write(data)
        declared = int(np.prod([max(s, 0) for s in shape])) * 8
        if len(data) < declared < 2 << 30:
            os.truncate(path, len(data) + declared)  # sparse: the header's claim, at no disk cost
        return
    if kind == "replace":
        data = m[1]
    elif kind == "overwrite":
        at = m[1] % (len(data) + 1)
        data = data[:at] + m[2] + data[at + len(m[2]) :]
    elif kind == "truncate":
        data = data[: m[1] % (len(data) + 1)]
    elif kind == "insert":
        at = m[1] % (len(data) + 1)
        data = data[:at] + m[2] + data[at:]
    with open(path, "wb") as f:
        f.write(data)


def _mutated_copy(base: str, dest_root: str, name: str, target: str, m: tuple) -> str:
    dest = os.path.join(dest_root, name)
    shutil.copytree(base, dest)
    _mutate(os.path.join(dest, target), m)
    return dest


def _read_everything(run) -> None:
    run.info, run.config, run.status, run.description, run.notes
    run.heartbeat_age()
    run.metrics()
    for step in run.snapshot_steps():
        s = run.snapshot(step)
        s.n, s.nonfinite_rows


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_reader_raises_only_run_format_error(base_run, tmp_path_factory, data):
    base, files = base_run
    target = data.draw(st.sampled_from(files), "target")
    m = data.draw(mutation, "mutation")
    root = tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())
    try:
        run_dir = _mutated_copy(base, root, "r", target, m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RunFormatWarning)
            try:
                [run] = list_runs(root)
                _read_everything(run)
            except RunFormatError as e:
                assert run_dir in str(e), e  # names a file of the run
    finally:
        shutil.rmtree(root)


DRIVER = textwrap.dedent("""
    import contextlib, io, sys, traceback
    from diagnostics.work.cli import main
    for run in sys.argv[1:]:
        for argv in (["summarize", run, "--step", "all", "--json", "--fail-on-collapse"],
                     ["report", run, "-o", run + ".html"]):
            err = io.StringIO()
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                    rc = main(argv)
            except BaseException:
                print(f"TRACEBACK {argv}:\\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                continue
            if rc not in (0, 2, 3) or (rc == 2 and "error: " not in err.getvalue()) or "Traceback" in err.getvalue():
                print(f"BAD EXIT {rc} {argv}: {err.getvalue()[-300:]}", file=sys.stderr, flush=True)
""")


SHARPEST = [
    b"[" * 100_000,
    b'{"a":' * 20_000,
    b"[" * 20_000 + b"]" * 20_000,
    b"\xff\xfe\x00",
    b'{"format_version": 1, "heartbeat": NaN, "status": "running"}',
]
RUN_FILES = (
    layout.RUN_FILE,
    layout.CONFIG_FILE,
    layout.METRICS_FILE,
    layout.NOTES_FILE,
    "embeddings.npy",
    "labels.npy",
    "meta-",
)


def _sharpest(base: str, files: list[str], kinds: tuple[str, ...], root: str) -> tuple[list[str], list]:
    """Every SHARPEST input in place of each file of the first snapshot (the second's are the same kinds)."""
    runs, cases = [], []
    for target in (
        f
        for f in files
        if (f.startswith(kinds) or os.path.basename(f).startswith(kinds)) and layout.snapshot_dirname(10) not in f
    ):
        for i, garbage in enumerate(SHARPEST):
            runs.append(_mutated_copy(base, root, f"s{len(runs)}", target, ("replace", garbage)))
            cases.append((target, i))
    return runs, cases


def _run_cli(runs: list[str], root: str, cases: list) -> None:
    script = os.path.join(root, "driver.py")
    with open(script, "w") as f:
        f.write(DRIVER)
    rc, err, peak_mb = child([script, *runs])  # one child: importing torch costs ~5 s of CPU
    assert rc == 0 and "TRACEBACK" not in err and "BAD EXIT" not in err, (rc, cases, err[-3000:])
    assert peak_mb < CLI_RSS_MB, (peak_mb, cases)


@settings(
    max_examples=1,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_cli_exits_cleanly_on_mutated_runs(base_run, tmp_path_factory, data):
    """summarize and report, as `python -m diagnostics` runs them, over the sharpest inputs in every run file
    and 16 drawn mutations of any file (cache records included), all in one child."""
    base, files = base_run
    root = tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())
    try:
        runs, cases = _sharpest(base, files, RUN_FILES, root)
        assert len(cases) == 8 * len(SHARPEST)  # run.json config.json metrics.jsonl notes.md 3 arrays, 2 meta
        for i in range(16):
            target = data.draw(st.sampled_from(files), f"target {i}")
            m = data.draw(mutation, f"mutation {i}")
            runs.append(_mutated_copy(base, root, f"r{i}", target, m))
            cases.append((target, m if m[0] != "replace" else (m[0], m[1][:40])))
        _run_cli(runs, root, cases)
    finally:
        shutil.rmtree(root)


def test_cli_on_the_sharpest_inputs_in_sidecars_and_cache_records(base_run, tmp_path):
    base, files = base_run
    runs, cases = _sharpest(base, files, (f"{layout.SNAPSHOT_DIR}/", f"{layout.CACHE_DIR}/records/"), str(tmp_path))
    _run_cli(runs, str(tmp_path), cases)
