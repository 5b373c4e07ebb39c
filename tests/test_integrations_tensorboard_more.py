"""TensorBoard import, continued: re-import appends, a followed log, status from the log, paired positives,
float64 values, and hostile logs refused with one line naming the file while nothing is written."""

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard", reason="tensorboard is not installed (requirements-dev.txt pins it)")
from tensorboard.compat.proto import summary_pb2  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from diagnostics import open_run  # noqa: E402
from integrations.tensorboard_import import TensorBoardLogError, follow, import_logdir  # noqa: E402


def _session_end(w: SummaryWriter, status: int) -> None:
    data = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(status=status))
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams", content=data.SerializeToString())
    )
    w.file_writer.add_summary(
        summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="_hparams_/session_end_info", metadata=meta)])
    )


def test_reimport_appends_only_what_is_new_and_follow_stops_at_the_session_end(tmp_path):
    w = SummaryWriter(str(tmp_path / "tb" / "live"))
    for step in range(3):
        w.add_scalar("loss", 1.0 / (step + 1), step)
    w.flush()
    assert import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs")) == ["tb-live"]
    run = open_run(tmp_path / "runs" / "tb-live")
    assert run.info["status"] == "running" and run.metrics()["step"].tolist() == [0, 1, 2]
    for step in range(3, 6):
        w.add_scalar("loss", 1.0 / (step + 1), step)
    _session_end(w, 1)  # STATUS_SUCCESS
    w.close()
    follow(str(tmp_path / "tb"), str(tmp_path / "runs"), every_s=0.01, rounds=5, say=lambda _: None)
    run = open_run(tmp_path / "runs" / "tb-live")
    assert run.metrics()["step"].tolist() == list(range(6)) and run.status == "finished"
    assert run.metrics()["loss"].tolist() == [float(str(np.float32(1.0 / (s + 1)))) for s in range(6)]
    assert run.info["resumed"] == 1  # follow stopped after one more import: the session had ended


def test_a_failed_session_imports_crashed_and_float64_values_stay_float64(tmp_path):
    with SummaryWriter(str(tmp_path / "tb" / "boom")) as w:
        w.add_scalar("loss", 1e39, 0, new_style=True, double_precision=True)  # beyond float32's 3.4e38
        w.add_scalar("tau", 0.2, 0)
        _session_end(w, 2)  # STATUS_FAILURE
    import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs"))
    run = open_run(tmp_path / "runs" / "tb-boom")
    assert run.status == "crashed" and "failure" in run.info["error"]
    assert run.metrics()["loss"].tolist() == [1e39] and run.metrics()["tau"].tolist() == [0.2]


def test_an_embedding_tagged_positives_is_the_positives_of_its_anchor(tmp_path):
    g = torch.Generator().manual_seed(0)
    z, z_pos = torch.randn((12, 4), generator=g), torch.randn((12, 4), generator=g)
    with SummaryWriter(str(tmp_path / "tb" / "pairs")) as w:
        w.add_scalar("loss", 1.0, 4)
        w.add_embedding(z, tag="probe", global_step=4)
        w.add_embedding(z_pos, tag="probe/positives", global_step=4)
    assert import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs")) == ["tb-pairs"]  # one run: one tag
    snap = open_run(tmp_path / "runs" / "tb-pairs").snapshot(4)
    np.testing.assert_allclose(snap.embeddings, z.numpy(), rtol=2**-11, atol=2**-24)  # float16 storage
    np.testing.assert_allclose(snap.positives, z_pos.numpy(), rtol=2**-11, atol=2**-24)


def _two_runs(tmp_path) -> Path:
    for name in ("a", "b"):
        with SummaryWriter(str(tmp_path / "tb" / name)) as w:
            w.add_scalar("loss", 1.0, 1)
    return tmp_path / "tb"


def _giant_length(d: Path) -> None:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    header = struct.pack("<Q", 2**60)
    with open(next(d.glob("events.out.tfevents.*")), "ab") as f:
        f.write(header + struct.pack("<I", masked_crc32c(header)) + b"x" * 64)


def _bomb(d: Path) -> None:
    from PIL import Image

    with SummaryWriter(str(d)) as w:
        w.add_embedding(torch.zeros((4, 2)), label_img=torch.zeros((4, 3, 2, 2)), global_step=1)
    Image.new("1", (20000, 20000)).save(next(d.glob("*/default/sprite.png")))


def _empty_tag(d: Path) -> None:
    with SummaryWriter(str(d)) as w:
        w.file_writer.add_summary(
            summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="", simple_value=1.0)]), global_step=2
        )


def _negative_step(d: Path) -> None:
    with SummaryWriter(str(d)) as w:
        w.add_scalar("loss", 2.0, -5)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_negative_step, "has step -5, not in"),
        (_giant_length, "declares 1152921504606846976 bytes"),
        (_bomb, "sprite.png: not a readable image .*decompression bomb"),
        (_empty_tag, "empty tag"),
    ],
)
def test_a_hostile_second_run_is_one_line_naming_its_file_and_nothing_is_written(tmp_path, damage, message):
    logdir = _two_runs(tmp_path)
    damage(logdir / "b")
    with pytest.raises(TensorBoardLogError, match=message) as e:
        import_logdir(str(logdir), str(tmp_path / "runs"))
    assert str(logdir / "b") in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # not even run a
    _two_runs(tmp_path / "fixed")  # a retry on a good log then imports both
    assert import_logdir(str(tmp_path / "fixed" / "tb"), str(tmp_path / "runs")) == ["tb-a", "tb-b"]


def test_a_newline_in_a_folder_name_is_a_one_line_error(tmp_path):
    with SummaryWriter(str(tmp_path / "tb" / "bad\nname")) as w:
        w.add_scalar("loss", 1.0, 1)
    with pytest.raises(TensorBoardLogError, match="cannot name a run") as e:
        import_logdir(str(tmp_path / "tb"), str(tmp_path / "runs"))
    assert "\n" not in str(e.value) and "bad\\nname" in str(e.value)
