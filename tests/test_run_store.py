"""The run-store contract: RunWriter writes, diagnostics.open_run reads, nothing is lost or corrupted."""

import errno
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch
from browser import free_port

from diagnostics import RunFormatError, list_runs, open_run
from runformat import layout
from runformat.writer import RunWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start_python(code: str, stdout=None) -> subprocess.Popen:
    """Another process running `code` against this checkout (a writer the test can signal or kill)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=stdout,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
    )


def test_round_trip_every_field(tmp_path):
    rng = np.random.default_rng(0)
    z_a = torch.randn(50, 16, dtype=torch.bfloat16, requires_grad=True)
    z_b = rng.standard_normal((50, 16)).astype(np.float64)
    h = torch.randn(50, 32) * 1e6  # does not fit float16: stored as float32
    y = torch.arange(50) % 7
    domains = np.array([f"d{i % 3}" for i in range(50)])
    thumbs = (rng.random((50, 4, 4, 3)) * 255).astype(np.uint8)
    cfg = {"lr": 1e-3, "contrastive": {"temperature": 0.1}, "description": "round trip"}
    with RunWriter(tmp_path, "rt", config=cfg) as run:
        run.log_metrics(0, {"loss/total": 1.5, "loss/contrastive": torch.tensor(0.75), "temperature": 0.1})
        run.log_metrics(0, {"eval/psnr": np.float32(21.0)})
        run.log_metrics(3, {"loss/total": float("nan"), "grad_norm": float("inf")})
        run.log_snapshot(
            3,
            embeddings=z_a,
            positives=z_b,
            features=h,
            labels=y,
            metadata={"domain": domains, "strength": np.linspace(0, 1, 50)},
            images=thumbs,
            positive_images=torch.from_numpy(thumbs[:, ::-1].copy()),
        )

    r = open_run(tmp_path / "rt")
    assert (r.name, r.config, r.status, r.description) == ("rt", cfg, "finished", "round trip")
    info = r.info
    assert info["format_version"] == layout.FORMAT_VERSION and info["world_size"] == 1 and info["error"] is None
    df = r.metrics()
    assert list(df["step"]) == [0, 0, 3]
    assert df["loss/contrastive"].iloc[0] == 0.75
    assert np.isnan(df["loss/total"].iloc[2]) and df["grad_norm"].iloc[2] == np.inf
    assert df["eval/psnr"].iloc[1] == 21.0
    assert r.snapshot_steps() == [3]
    s = r.snapshot(3)
    assert s.embeddings.dtype == np.float16 and s.features.dtype == np.float32
    np.testing.assert_allclose(s.embeddings, z_a.detach().float().numpy(), rtol=1e-2)
    np.testing.assert_allclose(s.positives, z_b, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(s.features, h.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(s.labels, y.numpy())
    np.testing.assert_array_equal(s.images, thumbs)
    np.testing.assert_array_equal(s.positive_images, thumbs[:, ::-1])
    assert list(s.metadata.columns) == ["domain", "strength"]
    assert list(s.metadata["domain"]) == list(domains)
    fields = s.info["fields"]
    assert fields["embeddings"]["source_dtype"] == "bfloat16" and fields["features"]["dtype"] == "float32"


def test_nonfinite_embeddings_are_stored_and_counted(tmp_path):
    z = np.ones((10, 4), np.float32)
    z[2, 1] = np.nan
    z[5] = np.inf
    with RunWriter(tmp_path, "nan") as run:
        run.log_snapshot(0, embeddings=z)
    s = open_run(tmp_path / "nan").snapshot(0)
    assert s.nonfinite_rows == 2 and np.isnan(s.embeddings[2, 1]) and np.isinf(s.embeddings[5]).all()


def test_exception_marks_crashed_with_error_text(tmp_path):
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path, "boom") as run:
            run.log_metrics(1, {"loss": 1.0})
            raise RuntimeError("CUDA out of memory (simulated)")
    r = open_run(tmp_path / "boom")
    assert r.status == "crashed" and "CUDA out of memory (simulated)" in r.info["error"]
    assert list(r.metrics()["step"]) == [1]


def test_sigterm_marks_crashed_and_keeps_data(tmp_path):
    code = f"""
        import time, numpy as np
        from runformat.writer import RunWriter
        run = RunWriter({str(tmp_path)!r}, "term")
        for step in range(10**6):
            run.log_metrics(step, {{"loss": 1.0 / (step + 1)}})
            if step == 5:
                run.log_snapshot(step, embeddings=np.eye(4, dtype=np.float32))
                run.flush()
                print("ready", flush=True)
            time.sleep(0.01)
    """
    proc = _start_python(code, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    r = open_run(tmp_path / "term")
    assert r.status == "crashed" and "SIGTERM" in r.info["error"]
    assert r.snapshot_steps() == [5] and r.metrics()["step"].max() >= 5


def test_kill_9_then_read_and_resume(tmp_path):
    code = f"""
        import time, numpy as np
        from runformat.writer import RunWriter
        run = RunWriter({str(tmp_path)!r}, "killed", heartbeat_every_s=0.2, stall_after_s=1.0)
        for step in range(10**6):
            run.log_metrics(step, {{"loss": 1.0}})
            if step % 20 == 0:
                run.log_snapshot(step, embeddings=np.random.rand(200, 8).astype("float32"))
            if step == 60:
                run.flush()
                print("ready", flush=True)
            time.sleep(0.002)
    """
    proc = _start_python(code, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.kill()
    proc.wait()
    r = open_run(tmp_path / "killed")
    df = r.metrics()
    assert df["step"].max() >= 60 and list(df["step"]) == sorted(df["step"])
    for step in r.snapshot_steps():
        assert r.snapshot(step).embeddings.shape == (200, 8)
    time.sleep(1.1)
    assert r.status == "stalled"
    last = int(df["step"].max())
    with RunWriter(tmp_path, "killed", resume=True) as run:
        with pytest.raises(ValueError, match="backwards"):
            run.log_metrics(last - 1, {"loss": 0.5})
        run.log_metrics(last + 1, {"loss": 0.5})
    r2 = open_run(tmp_path / "killed")
    assert r2.status == "finished" and r2.info["resumed"] == 1 and r2.metrics()["step"].max() == last + 1


def test_torn_last_line_is_invisible_and_cut_on_resume(tmp_path):
    with RunWriter(tmp_path, "torn") as run:
        run.log_metrics(0, {"loss": 1.0})
        run.log_metrics(1, {"loss": 0.9})
    path = tmp_path / "torn" / layout.METRICS_FILE
    with open(path, "ab") as f:
        f.write(b'{"step": 2, "wall_time": 1.0, "loss": 0.')
    r = open_run(tmp_path / "torn")
    assert list(r.metrics()["step"]) == [0, 1]
    with RunWriter(tmp_path, "torn", resume=True) as run:
        run.log_metrics(2, {"loss": 0.8})
    assert list(open_run(tmp_path / "torn").metrics()["loss"]) == [1.0, 0.9, 0.8]


def test_reader_reads_only_new_bytes(tmp_path, monkeypatch):
    run = RunWriter(tmp_path, "grow")
    for s in range(100):
        run.log_metrics(s, {"loss": float(s)})
    run.flush()
    r = open_run(tmp_path / "grow")
    assert len(r.metrics()) == 100
    starts = []
    original = r.storage.read_bytes
    monkeypatch.setattr(r.storage, "read_bytes", lambda p, start=0: starts.append(start) or original(p, start))
    size_before = os.path.getsize(tmp_path / "grow" / layout.METRICS_FILE)
    run.log_metrics(100, {"loss": 100.0})
    run.close()
    assert len(r.metrics()) == 101 and starts == [size_before]


def test_concurrent_writer_and_polling_reader(tmp_path):
    code = f"""
        import numpy as np
        from runformat.writer import RunWriter
        with RunWriter({str(tmp_path)!r}, "live") as run:
            for step in range(3000):
                run.log_metrics(step, {{"loss": 1.0, "acc": step / 3000}})
                if step % 300 == 0:
                    run.log_snapshot(step, embeddings=np.random.rand(2000, 64).astype("float32"),
                                     labels=np.arange(2000))
                if step % 50 == 0:
                    run.flush()
    """
    proc = _start_python(code)
    seen_rows, seen_snaps, polls = 0, set(), 0
    deadline = time.time() + 60
    while time.time() < deadline:
        finished = proc.poll() is not None
        try:
            r = open_run(tmp_path / "live")
        except RunFormatError:
            continue  # run.json not created yet
        df = r.metrics()
        assert list(df["step"]) == list(range(len(df)))
        assert len(df) == 0 or df["acc"].notna().all()
        assert len(df) >= seen_rows
        seen_rows = len(df)
        for step in r.snapshot_steps():
            s = r.snapshot(step)
            assert s.embeddings.shape == (2000, 64) and len(s.labels) == 2000
            seen_snaps.add(step)
        polls += 1
        if finished:
            break
    assert proc.returncode == 0 and polls > 3
    assert seen_rows == 3000 and len(seen_snaps) == 10


def test_planted_pickle_is_refused(tmp_path):
    with RunWriter(tmp_path, "evil") as run:
        run.log_snapshot(0, embeddings=np.eye(3, dtype=np.float32), labels=np.arange(3))
    marker = tmp_path / "pwned"
    payload = np.array([_Exploit(str(marker))], dtype=object)
    # what an attacker would plant: a valid .npy header for an object array, then the pickle stream
    with open(tmp_path / "evil" / "snapshots" / layout.snapshot_dirname(0) / "labels.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        pickle.dump(payload, f, protocol=3)
    with pytest.raises(RunFormatError, match="labels.npy"):
        open_run(tmp_path / "evil").snapshot(0)
    assert not marker.exists()


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_path_escapes_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    with RunWriter(tmp_path, "outside") as run:
        run.log_metrics(0, {"loss": 1.0})
    for bad in ("../outside", "/etc", "..", "a/b", ".hidden"):
        with pytest.raises(RunFormatError):
            open_run(bad, root=root)
    os.symlink(outside, root / "link")
    with pytest.raises(RunFormatError, match="outside"):
        open_run("link", root=root)
    assert [r.name for r in list_runs(root)] == []
    # a file inside a run that links out of the root
    with RunWriter(root, "inside") as run:
        run.log_metrics(0, {"loss": 1.0})
    os.symlink(tmp_path / "outside" / layout.RUN_FILE, root / "inside" / layout.CONFIG_FILE)
    with pytest.raises(RunFormatError, match="outside the runs root"):
        open_run("inside", root=root).config


def test_confinement_is_checked_on_every_read_of_a_long_lived_run(tmp_path):
    """Storage resolves its root once; every component below it is still checked on each call, so a folder
    swapped for a symlink out of the root after the run was opened (and read) is refused by the same Run."""
    outside = tmp_path / "outside"
    with RunWriter(tmp_path, "outside") as w:
        w.log_metrics(0, {"loss": 1.0})
    real_root = tmp_path / "real"
    real_root.mkdir()
    os.symlink(real_root, tmp_path / "root")  # a root that is itself a symlink is fine
    with RunWriter(real_root, "r") as w:
        w.log_metrics(0, {"loss": 1.0})
        w.log_snapshot(0, embeddings=np.eye(3, dtype=np.float32))
    run = open_run("r", root=tmp_path / "root")
    assert run.snapshot_steps() == [0] and len(run.metrics()) == 1
    os.rename(real_root / "r" / layout.SNAPSHOT_DIR, tmp_path / "moved")
    os.symlink(outside, real_root / "r" / layout.SNAPSHOT_DIR)
    with pytest.raises(RunFormatError, match="outside the runs root"):
        run.snapshot_steps()
    # a symlink inside the root that stays inside is followed, as os.path.realpath does
    os.symlink(real_root / "r" / layout.METRICS_FILE, real_root / "r" / "alias.jsonl")
    assert run.file("alias.jsonl")
    storage = run.storage
    for parts in (
        ("r", "alias.jsonl"),
        ("r", layout.SNAPSHOT_DIR, "x.json"),
        ("r", "missing", "deeper"),
        ("r", layout.SNAPSHOT_DIR, "..", "..", "..", "outside", layout.RUN_FILE),
        ("r", ".", "run.json"),
    ):
        path = storage.join(*parts)
        assert storage._realpath(path) == os.path.realpath(path), parts
    assert not storage.confined(storage.join("r", layout.SNAPSHOT_DIR, "..", "x"))  # the link's parent: outside


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "", "x\\y", ".x"])
def test_writer_refuses_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="name"):
        RunWriter(tmp_path, name)
    assert os.listdir(tmp_path) == []


def test_existing_run_is_not_overwritten(tmp_path):
    with RunWriter(tmp_path, "keep") as run:
        run.log_metrics(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="already exists"):
        RunWriter(tmp_path, "keep")
    assert len(open_run(tmp_path / "keep").metrics()) == 1


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(embeddings=np.zeros((5, 3)), positives=np.zeros((4, 3))), "positives"),
        (dict(embeddings=np.zeros((5, 3)), positives=np.zeros((5, 2))), "positives"),
        (dict(embeddings=np.zeros((5, 3)), features=np.zeros((6, 8))), "features"),
        (dict(embeddings=np.zeros((5, 3)), labels=np.zeros(4, int)), "labels"),
        (dict(embeddings=np.zeros((5, 3)), labels=np.zeros(5)), "labels"),
        (dict(embeddings=np.zeros((5, 3)), images=np.zeros((5, 4, 4), np.float32)), "images"),
        (dict(embeddings=np.zeros((5, 3)), images=np.zeros((4, 4, 4), np.uint8)), "images"),
        (dict(embeddings=np.zeros((5, 3)), positive_images=np.zeros((5, 4, 4), np.float32)), "positive_images"),
        (dict(embeddings=np.zeros((5, 3)), positive_images=np.zeros((6, 4, 4), np.uint8)), "positive_images"),
        (dict(embeddings=np.zeros((5, 3)), positive_images=np.zeros((5, 4, 4, 2), np.uint8)), "positive_images"),
        (dict(embeddings=np.zeros((5, 3)), metadata={"dom": ["a"] * 4}), "metadata"),
        (dict(embeddings=np.zeros(5)), "embeddings"),
        (dict(embeddings=np.zeros((5, 3), int)), "embeddings"),
    ],
)
def test_bad_snapshot_input_names_argument_and_writes_nothing(tmp_path, kwargs, argument):
    with RunWriter(tmp_path, "bad") as run:
        with pytest.raises(ValueError, match=argument):
            run.log_snapshot(0, **kwargs)
        run.log_snapshot(1, embeddings=np.zeros((2, 2)))  # the run goes on
    r = open_run(tmp_path / "bad")
    assert r.snapshot_steps() == [1]
    assert sorted(os.listdir(tmp_path / "bad" / "snapshots")) == [
        layout.snapshot_dirname(1),
        layout.snapshot_dirname(1) + ".json",
    ]


@pytest.mark.parametrize(
    "metrics, match",
    [
        ({"loss": "high"}, "loss"),
        ({"loss": None}, "loss"),
        ({"loss": [1, 2]}, "loss"),
        ({"loss": torch.ones(2)}, "loss"),
        ({"step": 1.0}, "step"),
        ({}, "metrics"),
        ({"": 1.0}, "metrics"),
    ],
)
def test_bad_metrics_are_refused(tmp_path, metrics, match):
    with RunWriter(tmp_path, "m") as run:
        with pytest.raises(ValueError, match=match):
            run.log_metrics(0, metrics)
        with pytest.raises(ValueError, match="step"):
            run.log_metrics(-1, {"loss": 1.0})
        run.log_metrics(5, {"loss": 1.0})
        with pytest.raises(ValueError, match="backwards"):
            run.log_metrics(4, {"loss": 1.0})
        run.log_snapshot(5, embeddings=np.zeros((2, 2)))
        with pytest.raises(ValueError, match="snapshot step"):
            run.log_snapshot(5, embeddings=np.zeros((2, 2)))
    assert len(open_run(tmp_path / "m").metrics()) == 1


def test_log_metrics_takes_a_measured_wall_time(tmp_path):
    with RunWriter(tmp_path, "t") as run:
        for bad in (float("nan"), float("inf"), -1.0, True, "now"):
            with pytest.raises(ValueError, match="wall_time"):
                run.log_metrics(0, {"loss": 1.0}, wall_time=bad)
        before = time.time()
        run.log_metrics(0, {"loss": 1.0}, wall_time=1_600_000_000.5)
        run.log_metrics(1, {"loss": 0.5}, wall_time=np.float64(0.0))
        run.log_metrics(2, {"loss": 0.25})  # no wall_time: stamped now
    m = open_run(tmp_path / "t").metrics()
    assert m["wall_time"].tolist()[:2] == [1_600_000_000.5, 0.0] and m["wall_time"].iloc[2] >= before


def test_config_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="config"):
        RunWriter(tmp_path, "c", config={"f": object()})


def test_disk_full_drops_snapshot_and_training_goes_on(tmp_path, monkeypatch):
    run = RunWriter(tmp_path, "full")
    real_save = np.save
    calls = {"n": 0}

    def failing_save(f, arr, allow_pickle=False):
        calls["n"] += 1
        if calls["n"] == 2:  # the second array of the first snapshot
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(f, arr, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", failing_save)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log_snapshot(10, embeddings=np.ones((3, 2), np.float32), positives=np.ones((3, 2), np.float32))
        run.log_metrics(11, {"loss": 1.0})
        run.log_snapshot(20, embeddings=np.ones((3, 2), np.float32))
        run.close()
    assert any("disk full" in str(w.message) for w in caught)
    r = open_run(tmp_path / "full")
    assert r.snapshot_steps() == [20] and r.status == "finished"
    assert r.info["dropped_snapshots"][0]["step"] == 10
    assert not (tmp_path / "full" / "snapshots" / layout.snapshot_dirname(10)).exists()
    assert list(r.metrics()["step"]) == [11]


@pytest.mark.parametrize(
    "target, garbage",
    [
        (layout.RUN_FILE, b"{not json"),
        (layout.RUN_FILE, b"[1, 2]"),
        (layout.CONFIG_FILE, b"\xff\xfe"),
    ],
)
def test_broken_json_is_a_run_format_error_naming_the_file(tmp_path, target, garbage):
    with RunWriter(tmp_path, "broken", config={"a": 1}) as run:
        run.log_metrics(0, {"loss": 1.0})
    with RunWriter(tmp_path, "fine") as run:
        run.log_metrics(0, {"loss": 1.0})
    (tmp_path / "broken" / target).write_bytes(garbage)
    broken, fine = list_runs(tmp_path)
    with pytest.raises(RunFormatError, match=target):
        broken.info if target == layout.RUN_FILE else broken.config
    assert fine.status == "finished"


def test_truncated_and_mistyped_npy(tmp_path):
    with RunWriter(tmp_path, "npy") as run:
        run.log_snapshot(0, embeddings=np.ones((100, 8), np.float32), labels=np.arange(100))
        run.log_snapshot(1, embeddings=np.ones((100, 8), np.float32), labels=np.arange(100))
    folder = tmp_path / "npy" / "snapshots" / layout.snapshot_dirname(0)
    data = (folder / "embeddings.npy").read_bytes()
    (folder / "embeddings.npy").write_bytes(data[: len(data) // 2])
    r = open_run(tmp_path / "npy")
    with pytest.raises(RunFormatError, match="embeddings.npy"):
        r.snapshot(0)
    assert r.snapshot(1).n == 100
    folder1 = tmp_path / "npy" / "snapshots" / layout.snapshot_dirname(1)
    np.save(folder1 / "labels.npy", np.arange(100, dtype=np.float64))
    with pytest.raises(RunFormatError, match="dtype"):
        r.snapshot(1)
    np.save(folder1 / "labels.npy", np.arange(50, dtype=np.int64))
    with pytest.raises(RunFormatError, match="shape"):
        r.snapshot(1)


def test_uncommitted_snapshot_is_invisible(tmp_path):
    with RunWriter(tmp_path, "half") as run:
        run.log_snapshot(0, embeddings=np.ones((3, 2), np.float32))
    folder = tmp_path / "half" / "snapshots" / layout.snapshot_dirname(7)
    folder.mkdir()
    np.save(folder / "embeddings.npy", np.ones((3, 2), np.float32))
    assert open_run(tmp_path / "half").snapshot_steps() == [0]
    with RunWriter(tmp_path, "half", resume=True) as run:  # resume clears the leftover
        run.log_snapshot(7, embeddings=np.zeros((3, 2), np.float32))
    assert open_run(tmp_path / "half").snapshot(7).embeddings.max() == 0


def test_memory_filesystem_round_trip():
    root = f"memory://cs-test-{os.getpid()}-{time.time_ns()}"
    with RunWriter(root, "mem", config={"x": 1}) as run:
        run.log_metrics(0, {"loss": 1.0})
        run.log_metrics(1, {"loss": 0.5})
        run.log_snapshot(
            1, embeddings=np.eye(4, dtype=np.float32), labels=np.arange(4), metadata={"k": ["a", "b", "c", "d"]}
        )
    runs = list_runs(root)
    assert [r.name for r in runs] == ["mem"]
    r = open_run(f"{root}/mem")
    assert r.config == {"x": 1} and r.status == "finished"
    assert list(r.metrics()["loss"]) == [1.0, 0.5]
    s = r.snapshot(1)
    np.testing.assert_array_equal(s.embeddings, np.eye(4))
    assert list(s.metadata["k"]) == list("abcd")
    with pytest.raises(RunFormatError):
        open_run("../mem", root=root)


def test_s3_compatible_server_round_trip(tmp_path):
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        env = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        os.environ.update(env)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="runs")
        import fsspec

        fsspec.config.conf["s3"] = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test"}
        try:
            with RunWriter("s3://runs/team", "s3run", config={"x": 2}) as run:
                run.log_metrics(0, {"loss": 1.0})
                run.log_snapshot(0, embeddings=np.ones((5, 3), np.float32), labels=np.arange(5))
            r = list_runs("s3://runs/team")[0]
            assert r.name == "s3run" and r.status == "finished" and r.config == {"x": 2}
            assert r.snapshot(0).n == 5 and list(r.metrics()["loss"]) == [1.0]
        finally:
            fsspec.config.conf.pop("s3", None)
    finally:
        server.stop()
        for k in env:
            os.environ.pop(k, None)
