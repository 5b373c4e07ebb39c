"""`contrastscope import tensorboard` against logs written by the real torch.utils.tensorboard.SummaryWriter."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard", reason="tensorboard is not installed (requirements-dev.txt pins it)")
pytest.importorskip("PIL", reason="Pillow reads the projector's sprite")
from integration_models import F16_ATOL, F16_RTOL  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from diagnostics import list_runs, open_run  # noqa: E402
from integrations.tensorboard_import import TensorBoardLogError, import_logdir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
N, D = 20, 5


def write_logs(logdir: Path) -> dict:
    g = torch.Generator().manual_seed(0)
    expected = {"vectors": {}, "labels": torch.randint(0, 3, (N,), generator=g)}
    expected["images"] = torch.rand((N, 3, 6, 6), generator=g)  # RGB thumbnails in [0, 1]
    with SummaryWriter(str(logdir / "simclr")) as w:
        for step in range(10):
            w.add_scalar("loss/total", 2.0 / (step + 1), step)
            w.add_scalar("temperature", 0.1, step)
        for step in (0, 5):
            mat = torch.randn((N, D), generator=g)
            expected["vectors"][step] = mat
            meta = [[int(y), f"item {i}"] for i, y in enumerate(expected["labels"])]
            w.add_embedding(
                mat, metadata=meta, metadata_header=["label", "name"], label_img=expected["images"], global_step=step
            )
        w.add_hparams({"tau": 0.1}, {}, run_name=".")  # the session end: the training finished
    with SummaryWriter(str(logdir / "sweep" / "tau0.5")) as w:  # a nested run; one metadata column, no header
        w.add_scalar("loss/total", 1.5, 3)
        expected["plain"] = torch.randn((N, D), generator=g)
        w.add_embedding(expected["plain"], metadata=expected["labels"].tolist(), global_step=3)
    return expected


def test_scalars_become_metrics_and_projector_embeddings_become_snapshots(tmp_path):
    expected = write_logs(tmp_path / "tb")
    names = import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs"))
    assert names == ["tb-simclr", "tb-sweep-tau0.5"]
    assert [r.name for r in list_runs(str(tmp_path / "runs"))] == names

    run = open_run(str(tmp_path / "runs" / "tb-simclr"))
    assert run.status == "finished" and run.config["tensorboard_run"] == "simclr"
    m = run.metrics()
    assert m["step"].tolist() == list(range(10))
    # TensorBoard stores scalars as float32: the import reads back their shortest decimal (0.1, not 0.100000001)
    np.testing.assert_array_equal(m["loss/total"], [float(str(np.float32(2.0 / (s + 1)))) for s in range(10)])
    np.testing.assert_array_equal(m["temperature"], 0.1)
    assert run.snapshot_steps() == [0, 5]
    for step in (0, 5):
        snap = run.snapshot(step)
        np.testing.assert_allclose(snap.embeddings, expected["vectors"][step].numpy(), rtol=F16_RTOL, atol=F16_ATOL)
        np.testing.assert_array_equal(snap.labels, expected["labels"].numpy())
        assert list(snap.metadata["name"]) == [f"item {i}" for i in range(N)]
        # SummaryWriter's sprite: uint8(255·x), truncated, laid out HWC
        sprite_pixels = (expected["images"].numpy().astype(np.float64) * 255).clip(0, 255).astype(np.uint8)
        np.testing.assert_array_equal(snap.images, sprite_pixels.transpose(0, 2, 3, 1))

    plain = open_run(str(tmp_path / "runs" / "tb-sweep-tau0.5"))
    assert plain.info["status"] == "running"  # no session end in its log: the heartbeat is its last event
    assert plain.snapshot_steps() == [3] and plain.metrics()["loss/total"].tolist() == [1.5]
    snap = plain.snapshot(3)
    np.testing.assert_allclose(snap.embeddings, expected["plain"].numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_array_equal(snap.labels, expected["labels"].numpy())  # the one unnamed column
    assert snap.images is None


def _event_file(run_dir: Path) -> Path:
    return next(run_dir.glob("events.out.tfevents.*"))


def _tensors(run_dir: Path) -> Path:
    return next(run_dir.glob("*/default/tensors.tsv"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: _event_file(d).write_bytes(_event_file(d).read_bytes()[:-7]), "truncated record"),
        (
            lambda d: _event_file(d).write_bytes(
                _event_file(d).read_bytes()[:60] + b"\xff" + _event_file(d).read_bytes()[61:]
            ),
            "corrupt or truncated",
        ),
        (lambda d: _tensors(d).write_text(_tensors(d).read_text() + "1.0\t2.0\n"), "line 21 has 2 values"),
        (lambda d: next(d.glob("00005/default/metadata.tsv")).write_text("label\tname\n1\tx\n"), "1 rows for 20"),
        (lambda d: next(d.glob("00000/default/sprite.png")).unlink(), "sprite.png: missing"),
        (lambda d: (d / "projector_config.pbtxt").write_text("embeddings { tensor_name: "), "not a projector config"),
    ],
)
def test_a_bad_file_is_named_and_nothing_is_written(tmp_path, damage, message):
    write_logs(tmp_path / "tb")
    damage(tmp_path / "tb" / "simclr")
    with pytest.raises(TensorBoardLogError, match=message) as e:
        import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs"))
    assert str(tmp_path / "tb" / "simclr") in str(e.value)  # the message names the file
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_folder_without_logs_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TensorBoardLogError, match="no TensorBoard event files"):
        import_logdir(str(tmp_path / "empty"), str(tmp_path / "runs"))


def test_command_line_import_and_refusal_to_overwrite(tmp_path):
    write_logs(tmp_path / "tb")
    command = [
        sys.executable,
        "-m",
        "contrastscope",
        "import",
        "tensorboard",
        str(tmp_path / "tb"),
        "--runs",
        str(tmp_path / "runs"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "tb-simclr" in first.stdout and "tb-sweep-tau0.5" in first.stdout
    before = (tmp_path / "runs" / "tb-simclr" / "metrics.jsonl").read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert again.returncode == 0, again.stderr  # a re-import appends what is new: here nothing
    assert (tmp_path / "runs" / "tb-simclr" / "metrics.jsonl").read_bytes() == before
    assert open_run(tmp_path / "runs" / "tb-simclr").snapshot_steps() == [0, 5]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").mkdir()
    with SummaryWriter(str(tmp_path / "other" / "simclr")) as w:
        w.add_scalar("loss", 1.0, 0)
    clash = subprocess.run(
        command[:5] + [str(tmp_path / "other")] + command[6:],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert clash.returncode == 2 and "already has a run tb-simclr that is not an import of" in clash.stderr


def test_imported_metrics_keep_tensorboard_event_wall_times(tmp_path):
    times = {step: 1_700_000_000.25 + 37.5 * step for step in range(6)}  # exact in float64 and in JSON
    with SummaryWriter(str(tmp_path / "tb" / "timed")) as w:
        for step, t in times.items():
            w.add_scalar("loss/total", 1.0 / (step + 1), step, walltime=t)
            w.add_scalar("lr", 0.1, step, walltime=t)
    import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs"))
    m = open_run(str(tmp_path / "runs" / "tb-timed")).metrics()
    assert m["step"].tolist() == list(times)
    assert m["wall_time"].tolist() == list(times.values())
